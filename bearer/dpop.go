package bearer

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/silentrefresh/silentrefresh/dpop"
	"github.com/silentrefresh/silentrefresh/token"
)

// WithDPoP makes Require accept DPoP-bound access tokens (RFC 9449
// section 7): "Authorization: DPoP <token>" with a DPoP header holding a
// proof that v verifies, whose ath is the token's hash and whose key is
// the one the token is bound to (its cnf.jkt). baseURL is the public
// origin the service is reached at, such as "https://api.example.com"
// (proofs name the URL their client sent to, which a proxy may hide); ""
// means the request's Host and TLS state.
//
// With or without WithDPoP, a DPoP-bound token sent as a bearer token is
// refused: whoever sends it without a proof may have stolen it.
func WithDPoP(v *dpop.Verifier, baseURL string) Option {
	return func(cfg *config) {
		cfg.dpop = v
		cfg.dpopBase = strings.TrimRight(baseURL, "/")
	}
}

// The results Require reports for DPoP, besides those of result.go.
const (
	// ResultInvalidProof: a DPoP-scheme request whose proof is missing,
	// refused, or of another key than the token's.
	ResultInvalidProof = "invalid_proof"
	// ResultBoundAsBearer: a DPoP-bound token sent as a bearer token.
	ResultBoundAsBearer = "bound_as_bearer"
)

// ErrBoundToken is wrapped by the error of a DPoP-bound access token sent
// with the Bearer scheme, or of a bearer token sent with the DPoP scheme.
var ErrBoundToken = errors.New("bearer: the token's binding does not match its scheme")

// DPoPError is the error of a request refused under the DPoP scheme (RFC
// 9449 section 7.1), or of a DPoP-bound token sent as Bearer. Refuse
// answers it with a DPoP challenge.
type DPoPError struct {
	// Code is the challenge's error: dpop.CodeInvalidProof,
	// dpop.CodeUseNonce or "invalid_token".
	Code string
	// Description says what was wrong.
	Description string
	// Algs are the algorithms the server accepts, for the challenge.
	Algs []string
	// Nonce is the nonce the next proof must carry, or "".
	Nonce string
	// Err is the underlying error, if any.
	Err error
}

// Error returns the code and the description.
func (e *DPoPError) Error() string { return "bearer: dpop: " + e.Code + ": " + e.Description }

// Unwrap returns the underlying error.
func (e *DPoPError) Unwrap() error { return e.Err }

// checkDPoP checks the proof of a DPoP-scheme request with the verified
// claims of its token raw, without recording it: recordDPoP does, once
// the proof is known to be of the token's key and the session live, so
// that proofs signed by any other key fill no replay cache.
func checkDPoP(r *http.Request, cfg *config, raw string, claims token.Claims) (dpop.Proof, string, error) {
	if claims.KeyThumbprint == "" {
		return dpop.Proof{}, ResultBoundAsBearer, dpopError(cfg, "invalid_token",
			"the access token is not DPoP-bound; send it as Bearer", ErrBoundToken)
	}
	p, err := cfg.dpop.Check(r.Context(), r.Header.Values("DPoP"), dpop.Request{
		Method: r.Method, URL: dpop.RequestURL(r, cfg.dpopBase), AccessToken: raw,
	})
	switch {
	case errors.Is(err, dpop.ErrNoProof):
		return dpop.Proof{}, ResultInvalidProof, dpopError(cfg, dpop.CodeInvalidProof, "a DPoP header is required with the DPoP scheme", err)
	case err != nil:
		return dpop.Proof{}, ResultInvalidProof, proofError(cfg, err)
	case p.Thumbprint != claims.KeyThumbprint:
		return dpop.Proof{}, ResultInvalidProof, dpopError(cfg, dpop.CodeInvalidProof, "the proof is signed by another key than the one the token is bound to", nil)
	}
	return p, ResultValid, nil
}

// recordDPoP records a proof checkDPoP accepted: a proof is good for one
// request.
func recordDPoP(r *http.Request, cfg *config, p dpop.Proof) (string, error) {
	if err := cfg.dpop.Record(r.Context(), p); err != nil {
		return ResultInvalidProof, proofError(cfg, err)
	}
	return ResultValid, nil
}

// proofError is the error of a proof that dpop.Check or Record refused.
func proofError(cfg *config, err error) error {
	var de *dpop.Error
	if errors.As(err, &de) && de.Err == nil {
		return dpopError(cfg, de.Code, de.Description, err)
	}
	return err // the replay cache failed
}

func dpopError(cfg *config, code, desc string, err error) *DPoPError {
	e := &DPoPError{Code: code, Description: desc, Err: err}
	if cfg.dpop != nil {
		e.Algs = cfg.dpop.Algorithms()
		if n := cfg.dpop.Nonces(); n != nil {
			e.Nonce = n.Current()
		}
	}
	if e.Algs == nil {
		e.Algs = dpop.DefaultAlgorithms
	}
	return e
}

// challenge is the WWW-Authenticate value of a DPoP refusal.
func (e *DPoPError) challenge() string {
	return `DPoP error="` + e.Code + `", error_description="` + quotable(e.Description) + `", algs="` + strings.Join(e.Algs, " ") + `"`
}

// quotable drops what cannot appear in a quoted-string.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return '\''
		}
		return r
	}, s)
}

// splitAuthorization returns the scheme and token of an Authorization
// header value: "Bearer" as Parse reads it, or "DPoP" (RFC 9449 section
// 7.1) with a token of the same syntax.
func splitAuthorization(header string) (scheme, tok string, err error) {
	s, rest, ok := strings.Cut(header, " ")
	if ok && strings.EqualFold(s, "DPoP") {
		tok, err := Parse("Bearer " + rest)
		if err != nil {
			return "", "", errors.New(strings.Replace(err.Error(), "bearer token", "DPoP token", 1))
		}
		return "DPoP", tok, nil
	}
	tok, err = Parse(header)
	return "Bearer", tok, err
}

// refuseDPoP answers a DPoPError with 401 and a DPoP challenge (RFC 9449
// section 7.1), with DPoP-Nonce when the next proof needs a nonce.
func refuseDPoP(w http.ResponseWriter, e *DPoPError) {
	h := w.Header()
	h.Set("WWW-Authenticate", e.challenge())
	if e.Nonce != "" {
		h.Set("DPoP-Nonce", e.Nonce)
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(refusal{Code: e.Code, Description: e.Description})
}

// refuseBusy answers a request whose proof could not be checked for replay
// because the cache is full: 503, to be retried shortly.
func refuseBusy(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Retry-After", "1")
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(refusal{Code: "temporarily_unavailable", Description: "too many DPoP proofs at once; retry shortly"})
}
