package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/silentrefresh/silentrefresh/session"
)

// metrics are the server's Prometheus collectors.
type metrics struct {
	refreshes *prometheus.CounterVec   // by outcome
	logins    *prometheus.CounterVec   // by outcome
	logouts   prometheus.Counter       // sessions revoked by logout or revocation
	bearer    *prometheus.CounterVec   // bearer checks by result
	dpop      *prometheus.CounterVec   // DPoP proof checks by result
	latency   *prometheus.HistogramVec // by route
}

// Refresh outcomes beyond the session.Reason values.
const (
	outcomeRotated     = string(session.OutcomeRotated)
	outcomeGraceReplay = string(session.OutcomeGraceReplay)
	outcomeError       = "error"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "silentrefresh_refresh_total",
			Help: "Refresh-token exchanges by outcome: rotated, grace_replay, or the reason of a refusal (superseded, reused, expired, revoked, unknown, client_mismatch), or error.",
		}, []string{"outcome"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "silentrefresh_login_total",
			Help: "Password logins by outcome: success, invalid_credentials, rate_limited, error.",
		}, []string{"outcome"}),
		logouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "silentrefresh_logout_total",
			Help: "Logout and revocation requests answered.",
		}),
		bearer: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "silentrefresh_bearer_total",
			Help: "Bearer token checks by result: valid, invalid, expired, session_ended.",
		}, []string{"result"}),
		dpop: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "silentrefresh_dpop_total",
			Help: "DPoP proof checks by result: valid, invalid, use_nonce, missing (required, none sent), bearer (a DPoP-bound token sent as Bearer), mismatch (a proof of another key than the token's).",
		}, []string{"result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "silentrefresh_http_request_duration_seconds",
			Help:    "Latency of HTTP requests by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
	}
	for _, o := range []string{outcomeRotated, outcomeGraceReplay, outcomeError,
		string(session.ReasonSuperseded), string(session.ReasonReused), string(session.ReasonExpired),
		string(session.ReasonRevoked), string(session.ReasonUnknown), string(session.ReasonClientMismatch),
		string(session.ReasonProofMissing), string(session.ReasonKeyMismatch)} {
		m.refreshes.WithLabelValues(o)
	}
	for _, o := range []string{"success", "invalid_credentials", "rate_limited", "error"} {
		m.logins.WithLabelValues(o)
	}
	for _, o := range []string{"valid", "invalid", "expired", "session_ended"} {
		m.bearer.WithLabelValues(o)
	}
	for _, o := range dpopResults {
		m.dpop.WithLabelValues(o)
	}
	reg.MustRegister(m.refreshes, m.logins, m.logouts, m.bearer, m.dpop, m.latency)
	return m
}

// newRegistry returns a registry with the Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
