package client

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Tokens are the credentials of one session.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// Expiry is when the access token stops being accepted, on the local
	// clock. The zero time means it never expires (it is then only
	// refreshed when a server answers 401).
	Expiry time.Time `json:"expiry,omitzero"`
	// TokenType is "DPoP" for an access token bound to the Client's DPoP
	// key (RFC 9449), which is sent with a proof of it; "" or "Bearer" for
	// a bearer token.
	TokenType string `json:"token_type,omitempty"`
}

// IsZero reports whether t holds no token at all. Tokens with a refresh
// token but no access token are not zero: the first request refreshes.
func (t Tokens) IsZero() bool { return t.AccessToken == "" && t.RefreshToken == "" }

// String describes t without revealing any secret, so that tokens printed
// or logged by mistake do not leak.
func (t Tokens) String() string {
	if t.IsZero() {
		return "Tokens{}"
	}
	exp := "never"
	if !t.Expiry.IsZero() {
		exp = t.Expiry.Format(time.RFC3339)
	}
	return fmt.Sprintf("Tokens{access:[redacted] refresh:%s expiry:%s}", redacted(t.RefreshToken), exp)
}

// GoString is like String, for %#v.
func (t Tokens) GoString() string { return t.String() }

// LogValue keeps secrets out of structured logs.
func (t Tokens) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("present", !t.IsZero()),
		slog.Time("expiry", t.Expiry),
	)
}

func redacted(s string) string {
	if s == "" {
		return "none"
	}
	return "[redacted]"
}

// Grant is what a token endpoint answers to a login or a refresh.
type Grant struct {
	AccessToken string
	// RefreshToken is the rotated refresh token; empty when the server did
	// not rotate it (the old one stays in use).
	RefreshToken string
	// TokenType is "Bearer", or "DPoP" for an access token bound to the
	// key the request proved (RFC 9449).
	TokenType string
	// ExpiresIn is the access token's lifetime as the server stated it;
	// zero when the server did not say.
	ExpiresIn time.Duration
	// RefreshExpiresIn is the refresh token's lifetime, when stated.
	RefreshExpiresIn time.Duration
}

// tokens turns g into Tokens, measuring the expiry on the local clock from
// sent, the moment the request that obtained g was sent (no later than the
// moment the server issued it, so clock skew between the two machines does
// not matter). old is the refresh token kept when g carries none.
func (g Grant) tokens(sent time.Time, old string) Tokens {
	t := Tokens{AccessToken: g.AccessToken, RefreshToken: g.RefreshToken}
	if g.TokenType == tokenTypeDPoP {
		t.TokenType = tokenTypeDPoP
	}
	if t.RefreshToken == "" {
		t.RefreshToken = old
	}
	if g.ExpiresIn > 0 {
		t.Expiry = sent.Add(g.ExpiresIn)
	}
	return t
}

// A Refresher exchanges a refresh token for new tokens: one attempt, no
// retries (the Client retries). It must be safe for concurrent use.
//
// Errors tell the Client what to do next, by the rule for "the session is
// over" in docs/API.md: an error matching [ErrInvalidGrant] (a 4xx answer
// with error=invalid_grant) ends the session; a [*RetrieveError] with a 429
// or 5xx status, or a [*NetworkError], is retried with backoff honouring
// Retry-After (a request that was sent but got no answer, once at once);
// anything else, any other 4xx among them, is returned to the waiting
// requests as it is, and the tokens are kept.
type Refresher interface {
	Refresh(ctx context.Context, refreshToken string) (Grant, error)
}

// A Revoker revokes a refresh token at the server (logout). Both refreshers
// of this package implement it.
type Revoker interface {
	Revoke(ctx context.Context, refreshToken string) error
}
