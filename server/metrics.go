package server

import (
	"errors"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/silentrefresh/silentrefresh/bearer"
	"github.com/silentrefresh/silentrefresh/session"
)

// metrics are the server's Prometheus collectors.
type metrics struct {
	refreshes *prometheus.CounterVec   // by outcome
	theft     *prometheus.CounterVec   // revoking refusals, by reason
	logins    *prometheus.CounterVec   // by outcome
	logouts   prometheus.Counter       // sessions revoked by logout or revocation
	bearer    *prometheus.CounterVec   // bearer checks by result
	latency   *prometheus.HistogramVec // by route
}

// The names of the server's metrics, for dashboards, alerts and the load
// generator that reads them back.
const (
	// MetricRefreshes counts refresh-token exchanges by the label
	// LabelOutcome: a session.Outcome, a session.Reason, or OutcomeError.
	MetricRefreshes = "silentrefresh_refresh_total"
	// MetricLogins counts password logins by LabelOutcome.
	MetricLogins = "silentrefresh_login_total"
	// MetricLogouts counts logout and revocation requests answered.
	MetricLogouts = "silentrefresh_logout_total"
	// MetricTheftSignals counts refusals that revoked a session because
	// two holders presented its refresh tokens, by the label "reason":
	// session.ReasonReused or session.ReasonSuperseded. Alert on it.
	MetricTheftSignals = "silentrefresh_theft_signals_total"
	// MetricBearer counts bearer token checks by the label "result".
	MetricBearer = "silentrefresh_bearer_total"
	// MetricRequestDuration is the latency of HTTP requests by "route".
	MetricRequestDuration = "silentrefresh_http_request_duration_seconds"

	// LabelOutcome is the label of MetricRefreshes and MetricLogins.
	LabelOutcome = "outcome"
	// OutcomeError is the MetricRefreshes outcome of a refresh that failed
	// for another reason than a refusal (the store was down, say).
	OutcomeError = "error"
)

// Refresh outcomes beyond the session.Reason values.
const (
	outcomeRotated     = string(session.OutcomeRotated)
	outcomeGraceReplay = string(session.OutcomeGraceReplay)
	outcomeError       = OutcomeError
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRefreshes,
			Help: "Refresh-token exchanges by outcome: rotated, grace_replay, or the reason of a refusal (superseded, reused, expired, revoked, unknown, client_mismatch), or error.",
		}, []string{LabelOutcome}),
		theft: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricTheftSignals,
			Help: "Refusals that revoked the session because a refresh token had two holders: reused (presented after the grace window) or superseded (presented inside it after its successor was used).",
		}, []string{"reason"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricLogins,
			Help: "Password logins by outcome: " + strings.Join(loginOutcomes, ", ") + ".",
		}, []string{LabelOutcome}),
		logouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricLogouts,
			Help: "Logout and revocation requests answered.",
		}),
		bearer: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricBearer,
			Help: "Bearer token checks by result: " + strings.Join(bearer.Results, ", ") + ".",
		}, []string{"result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricRequestDuration,
			Help:    "Latency of HTTP requests by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
	}
	for _, o := range []string{outcomeRotated, outcomeGraceReplay, outcomeError,
		string(session.ReasonSuperseded), string(session.ReasonReused), string(session.ReasonExpired),
		string(session.ReasonRevoked), string(session.ReasonUnknown), string(session.ReasonClientMismatch)} {
		m.refreshes.WithLabelValues(o)
	}
	for _, r := range []session.Reason{session.ReasonReused, session.ReasonSuperseded} {
		m.theft.WithLabelValues(string(r))
	}
	for _, o := range loginOutcomes {
		m.logins.WithLabelValues(o)
	}
	for _, o := range bearer.Results {
		m.bearer.WithLabelValues(o)
	}
	reg.MustRegister(m.refreshes, m.theft, m.logins, m.logouts, m.bearer, m.latency)
	return m
}

// observeRefresh counts a refresh outcome and logs what an operator needs
// to audit a suspected theft: every grace replay, and every refusal that
// revoked the session, with the session ID and the client's address. It
// never logs a token.
func (s *Server) observeRefresh(r *http.Request, g session.Grant, err error) {
	var ge *session.GrantError
	switch {
	case err == nil:
		s.metrics.refreshes.WithLabelValues(string(g.Outcome)).Inc()
		if g.Outcome == session.OutcomeGraceReplay {
			s.log.Info("refresh grace replay", "sid", g.Family.ID, "client", s.clientAddr(r))
		}
	case errors.As(err, &ge):
		s.metrics.refreshes.WithLabelValues(string(ge.Reason)).Inc()
		if ge.Revoked {
			s.metrics.theft.WithLabelValues(string(ge.Reason)).Inc()
			s.log.Warn("refresh refused: session revoked", "sid", ge.SessionID, "client", s.clientAddr(r), "reason", string(ge.Reason))
		}
	default:
		s.metrics.refreshes.WithLabelValues(outcomeError).Inc()
	}
}

// newRegistry returns a registry with the Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
