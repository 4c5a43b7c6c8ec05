package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/silentrefresh/silentrefresh/dpop"
)

// nonceSecretName is the store secret that keys the server's DPoP nonces,
// so that every replica issues and accepts the same ones.
const nonceSecretName = "dpop-nonce"

// The results of MetricDPoP.
const (
	dpopValid   = "valid"     // a proof passed every check
	dpopInvalid = "invalid"   // a proof was refused (invalid_dpop_proof)
	dpopNonce   = "use_nonce" // a proof lacked the current nonce (use_dpop_nonce)
	dpopMissing = "missing"   // a proof was required and none came
)

var dpopResults = []string{dpopValid, dpopInvalid, dpopNonce, dpopMissing}

// newDPoPVerifier returns the verifier of the proofs the server receives.
// With nonces, the nonce secret is loaded from the store (created on first
// start).
func newDPoPVerifier(ctx context.Context, cfg Config) (*dpop.Verifier, error) {
	dc := dpop.Config{Now: cfg.Now, Replay: dpop.NewMemoryReplay(cfg.DPoPReplayEntries)}
	if cfg.DPoPNonce {
		candidate, err := randomSecret()
		if err != nil {
			return nil, err
		}
		secret, err := cfg.Store.LoadOrStoreSecret(ctx, nonceSecretName, candidate)
		if err != nil {
			return nil, fmt.Errorf("load DPoP nonce secret: %w", err)
		}
		if dc.Nonces, err = dpop.NewNonces(secret, 0, cfg.Now); err != nil {
			return nil, err
		}
	}
	return dpop.NewVerifier(dc)
}

func randomSecret() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate secret: %w", err)
	}
	return b, nil
}

// setNonce sends the current DPoP nonce, when the server asks for nonces,
// so that the client's next proof can carry it (RFC 9449 section 8.2).
func (s *Server) setNonce(w http.ResponseWriter) {
	if n := s.dpop.Nonces(); n != nil {
		w.Header().Set("DPoP-Nonce", n.Current())
	}
}

// proof is the DPoP proof of a request to a token endpoint, checked by
// every rule but not yet recorded in the replay cache. The zero value is
// no proof.
type proof struct {
	p   dpop.Proof
	jkt string // the thumbprint of the proof's key; "" for no proof
}

// tokenProof checks the DPoP proof of a request to a token endpoint (the
// OAuth2 token endpoint, the JSON API's login, refresh and exchange) and
// returns it, or the zero proof when the request has no DPoP header. A
// refused proof is a 400 invalid_dpop_proof or use_dpop_nonce (RFC 9449
// sections 5 and 8) and changes nothing stored. The proof is not recorded:
// the handler calls recordProof once the request's credential proved
// valid, so that requests without one cannot fill the replay cache.
func (s *Server) tokenProof(w http.ResponseWriter, r *http.Request) (proof, error) {
	s.setNonce(w)
	p, err := s.dpop.Check(r.Context(), r.Header.Values("DPoP"), dpop.Request{Method: r.Method, URL: dpop.RequestURL(r, s.cfg.Issuer)})
	if errors.Is(err, dpop.ErrNoProof) {
		return proof{}, nil
	}
	if err != nil {
		return proof{}, s.proofError(err)
	}
	return proof{p: p, jkt: p.Thumbprint}, nil
}

// recordProof records the proof of a request whose credential proved
// valid (the password matched, the assertion held, the refresh token was
// exchanged), so that it is good for no other request. A proof used
// before is a 400 invalid_dpop_proof; a full cache a 503. The zero proof
// records nothing.
func (s *Server) recordProof(ctx context.Context, pr proof) error {
	if pr.jkt == "" {
		return nil
	}
	if err := s.dpop.Record(ctx, pr.p); err != nil {
		return s.proofError(err)
	}
	s.metrics.dpop.WithLabelValues(dpopValid).Inc()
	return nil
}

// proofError turns an error of dpop.Check or Record into the answer of a token
// endpoint, and counts it.
func (s *Server) proofError(err error) error {
	var de *dpop.Error
	switch {
	case errors.Is(err, dpop.ErrReplayCacheFull):
		s.log.Warn("DPoP replay cache full: proofs refused until it drains")
		return &apiError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable",
			Description: "too many DPoP proofs at once; retry shortly", RetryAfter: 1}
	case errors.As(err, &de) && de.Err != nil:
		return err // the replay cache failed: internalError
	case errors.As(err, &de) && de.Code == dpop.CodeUseNonce:
		s.metrics.dpop.WithLabelValues(dpopNonce).Inc()
		return badRequest(de.Code, "%s", de.Description)
	case errors.As(err, &de):
		s.metrics.dpop.WithLabelValues(dpopInvalid).Inc()
		return badRequest(de.Code, "%s", de.Description)
	}
	return err
}

// loginProof is tokenProof for a login: with Config.RequireDPoP, a login
// without a proof is refused.
func (s *Server) loginProof(w http.ResponseWriter, r *http.Request) (proof, error) {
	pr, err := s.tokenProof(w, r)
	if err == nil && pr.jkt == "" && s.cfg.RequireDPoP {
		s.metrics.dpop.WithLabelValues(dpopMissing).Inc()
		return proof{}, badRequest(dpop.CodeInvalidProof, "this server requires a DPoP proof (RFC 9449) with every login")
	}
	return pr, err
}

// tokenType is the token_type of a grant's access token (RFC 9449
// section 5).
func tokenType(jkt string) string {
	if jkt != "" {
		return "DPoP"
	}
	return "Bearer"
}

// dpopAlgs is the algs parameter of a DPoP challenge.
func (s *Server) dpopAlgs() string { return strings.Join(s.dpop.Algorithms(), " ") }
