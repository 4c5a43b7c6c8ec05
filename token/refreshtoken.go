package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// RefreshTokenBytes is the number of random bytes in a refresh token.
const RefreshTokenBytes = 32

// NewRefreshToken returns a new refresh token: 32 random bytes, base64url
// encoded without padding (43 characters).
func NewRefreshToken() (string, error) {
	var b [RefreshTokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("token: reading random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// HashRefreshToken returns the SHA-256 of a refresh token as presented by a
// client. It is the only form in which refresh tokens are stored.
func HashRefreshToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// SuccessorToken returns the refresh token that replaces t on rotation:
// base64url(HMAC-SHA256(secret, t)) without padding. The same secret and t
// always give the same successor, which lets a repeated exchange inside the
// grace window answer it again without storing it.
func SuccessorToken(secret []byte, t string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(t))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// NewID returns 16 random bytes, base64url encoded without padding (22
// characters). It names token families (sessions) and access tokens (jti).
func NewID() string {
	var b [16]byte
	// crypto/rand.Read never fails on supported platforms (it crashes the
	// program rather than return short), so the error is not checked.
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
