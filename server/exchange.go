package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/silentrefresh/silentrefresh/assertion"
	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/session"
)

// GrantTypeJWTBearer is the grant_type of RFC 7523 section 2.1.
const GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// assertionAccepted is the outcome of an assertion that opened a session;
// refusals are "rule_N", N the rule of RFC 7523 section 3.
const assertionAccepted = "accepted"

// newAssertionMetric registers silentrefresh_assertion_total{outcome}.
func newAssertionMetric(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "silentrefresh_assertion_total",
		Help: "JWT bearer assertions (RFC 7523) by outcome: accepted, rule_1 to rule_10 (the rule of section 3 that refused it), error.",
	}, []string{"outcome"})
	c.WithLabelValues(assertionAccepted)
	c.WithLabelValues(outcomeError)
	for rule := 1; rule <= 10; rule++ {
		c.WithLabelValues(fmt.Sprintf("rule_%d", rule))
	}
	reg.MustRegister(c)
	return c
}

// newAssertionValidator is the validator of Config.TrustedIssuers, or nil
// when there are none. An assertion's aud must name the issuer or the token
// endpoint.
func newAssertionValidator(cfg Config) (*assertion.Validator, error) {
	if len(cfg.TrustedIssuers) == 0 {
		return nil, nil
	}
	return assertion.NewValidator(assertion.Config{
		Issuers:   cfg.TrustedIssuers,
		Audiences: []string{cfg.Issuer, cfg.Issuer + "/oauth2/token"},
		Replay:    cfg.Store,
		Now:       cfg.Now,
	})
}

// exchangeRequest is the body of POST /api/auth/exchange.
type exchangeRequest struct {
	Assertion *string `json:"assertion"`
	// Scope is the scope asked for (RFC 6749 section 3.3), optional.
	Scope string `json:"scope"`
	// Cookie asks for the refresh token as an HttpOnly cookie (cookie
	// mode), as at login.
	Cookie bool `json:"cookie"`
}

// handleExchange is the JSON API's JWT bearer grant: an assertion signed
// by a trusted issuer becomes a session.
func (s *Server) handleExchange(w http.ResponseWriter, r *http.Request) {
	var req exchangeRequest
	if e := decodeJSON(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	if e := requiredField("assertion", req.Assertion); e != nil {
		writeError(w, e)
		return
	}
	if e := (caller{}).checkScope(req.Scope); e != nil {
		writeError(w, e)
		return
	}
	s.openJSONSession(w, r, req.Cookie, func(pr proof) (session.Grant, error) {
		g, err := s.exchange(r, *req.Assertion, caller{}, req.Scope, pr)
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == "invalid_grant" {
			ae.Status = http.StatusUnauthorized // as the JSON API's refresh answers it
		}
		return g, err
	})
}

// exchange validates an assertion and opens its session. Its errors are
// *apiError for the client's mistakes and others for internalError.
func (s *Server) exchange(r *http.Request, raw string, cl caller, scope string, pr proof) (session.Grant, error) {
	if s.assertions == nil {
		return session.Grant{}, badRequest("unsupported_grant_type", "this server trusts no assertion issuers (serve --trusted-issuer)")
	}
	a, err := s.assertions.Validate(r.Context(), raw)
	var ae *assertion.Error
	switch {
	case errors.As(err, &ae):
		s.assertionTotal.WithLabelValues(fmt.Sprintf("rule_%d", ae.Rule)).Inc()
		s.log.Info("assertion refused", "rule", ae.Rule, "reason", ae.Reason, "remote", s.clientAddr(r))
		return session.Grant{}, badRequest("invalid_grant", "%s", ae.Description())
	case err != nil:
		s.assertionTotal.WithLabelValues(outcomeError).Inc()
		return session.Grant{}, err
	}
	g, err := s.openSession(r, Identity{Subject: a.SessionSubject(), Claims: a.Claims}, cl, scope, pr)
	if err != nil {
		s.assertionTotal.WithLabelValues(outcomeError).Inc()
		return session.Grant{}, err
	}
	s.assertionTotal.WithLabelValues(assertionAccepted).Inc()
	s.log.Info("assertion exchanged", "iss", a.Issuer.Name, "sub", g.Family.Subject, "sid", g.Family.ID)
	return g, nil
}

// openSession opens the session of an identity, bound to the key of the
// DPoP proof pr unless it is the zero proof. The identity is proven: pr
// is recorded first, so that a proof opens one session only. A malformed scope is an
// *apiError; claims that cannot go into a token come from the
// Authenticator, not the client, and are the server's error.
func (s *Server) openSession(r *http.Request, id Identity, cl caller, scope string, pr proof) (session.Grant, error) {
	if err := s.recordProof(r.Context(), pr); err != nil {
		return session.Grant{}, err
	}
	l := session.Login{Subject: id.Subject, ClientID: cl.ID, KeyThumbprint: pr.jkt, Attributes: session.Attributes{
		Scope: scope, LiveClaims: id.LiveClaims, ConfidentialClient: cl.Authenticated,
	}}
	if id.LiveClaims {
		// Read here, not in the Authenticator: the hash slot it runs in
		// is for hashing.
		c, err := s.store.UserClaims(r.Context(), id.Subject)
		if err != nil {
			return session.Grant{}, fmt.Errorf("server: claims of %s: %w", id.Subject, err)
		}
		l.SubjectClaims = claims.Merge(c, id.Claims)
	} else {
		l.Claims = id.Claims
	}
	g, err := s.engine.LoginWith(r.Context(), l)
	var se *session.ScopeError
	switch {
	case errors.As(err, &se):
		return session.Grant{}, badRequest("invalid_scope", "%s", se.Reason)
	case errors.Is(err, claims.ErrInvalid):
		s.log.Error("login claims refused", "sub", id.Subject, "err", err)
	}
	return g, err
}

// grantTypes are the grant_types_supported of the metadata.
func (s *Server) grantTypes() []string {
	if s.assertions == nil {
		return []string{"password", "refresh_token"}
	}
	return []string{"password", "refresh_token", GrantTypeJWTBearer}
}
