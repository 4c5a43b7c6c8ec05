package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"
)

// RefreshTokenBytes is the number of secret bytes in a refresh token.
const RefreshTokenBytes = 32

// prefixBytes is the length of a refresh token's issue-time prefix.
const prefixBytes = 8

// refreshTokenLen is the length of a refresh token: the prefix and the
// secret, base64url without padding.
var refreshTokenLen = base64.RawURLEncoding.EncodedLen(prefixBytes + RefreshTokenBytes)

// A refresh token is base64url(P || S) without padding (54 characters),
// where P is the instant it was issued, as big-endian unix microseconds,
// and S is 32 secret bytes: random for the token of a login, HMAC-derived
// for a successor (SuccessorToken). Its stored hash is P || the first 24
// bytes of SHA-256 of the whole token. The prefix is no secret (an access
// token says as much in its iat); it orders the stored hashes by issue
// time, so that a rotation writes its successor next to the other recent
// ones instead of at a random place of the index, and consumes a token
// issued not long ago, whose page is most likely already being written:
// fewer pages per commit. 192 bits of SHA-256 leave a lookup key that no
// one can hit without the token.
//
// Tokens of the earlier format (base64url of 32 random bytes, 43
// characters, hashed with the whole SHA-256) stay valid: HashRefreshToken
// tells the two apart by shape, and their successors are of the new
// format.

// NewRefreshToken returns a new refresh token issued at issuedAt: 32
// random bytes behind the issue-time prefix.
func NewRefreshToken(issuedAt time.Time) (string, error) {
	var b [prefixBytes + RefreshTokenBytes]byte
	putPrefix(b[:], issuedAt)
	if _, err := rand.Read(b[prefixBytes:]); err != nil {
		return "", fmt.Errorf("token: reading random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func putPrefix(b []byte, at time.Time) {
	binary.BigEndian.PutUint64(b, uint64(at.UnixMicro()))
}

// HashRefreshToken returns the stored form of a refresh token as presented
// by a client (32 bytes). It is the only form in which refresh tokens are
// stored. Any string has a hash; one that is no refresh token matches
// nothing stored.
func HashRefreshToken(t string) []byte {
	var raw [prefixBytes + RefreshTokenBytes]byte
	if len(t) == refreshTokenLen {
		if n, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(t)); err == nil && n == len(raw) {
			h := sha256.Sum256([]byte(t))
			out := make([]byte, sha256.Size)
			copy(out, raw[:prefixBytes])
			copy(out[prefixBytes:], h[:sha256.Size-prefixBytes])
			return out
		}
	}
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// SuccessorToken returns the refresh token that replaces t on a rotation at
// issuedAt: its secret is HMAC-SHA256(secret, t). The same secret, t and
// instant always give the same successor, which lets a repeated exchange
// inside the grace window answer it again without storing it (see
// ReplaySuccessor).
func SuccessorToken(secret []byte, t string, issuedAt time.Time) string {
	var b [prefixBytes + RefreshTokenBytes]byte
	putPrefix(b[:], issuedAt)
	return successorWithPrefix(secret, t, b[:])
}

func successorWithPrefix(secret []byte, t string, b []byte) string {
	copy(b[prefixBytes:], successorSecret(secret, t))
	return base64.RawURLEncoding.EncodeToString(b)
}

// successorSecret is the secret part of t's successor, HMAC-SHA256(secret, t).
func successorSecret(secret []byte, t string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(t))
	return m.Sum(nil)
}

// ReplaySuccessor returns the successor that a rotation of t derived with
// secret, given the stored hash of that successor, and whether it matches
// that hash. It is false when the successor was derived with another
// secret (or is not t's successor at all). A successor made before the
// issue-time prefix (base64url of the HMAC alone) is recognised too.
func ReplaySuccessor(secret []byte, t string, storedHash []byte) (string, bool) {
	mac := successorSecret(secret, t)
	if len(storedHash) == sha256.Size {
		var b [prefixBytes + RefreshTokenBytes]byte
		copy(b[:], storedHash[:prefixBytes])
		copy(b[prefixBytes:], mac)
		s := base64.RawURLEncoding.EncodeToString(b[:])
		if subtle.ConstantTimeCompare(HashRefreshToken(s), storedHash) == 1 {
			return s, true
		}
	}
	legacy := base64.RawURLEncoding.EncodeToString(mac)
	if subtle.ConstantTimeCompare(HashRefreshToken(legacy), storedHash) == 1 {
		return legacy, true
	}
	return "", false
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
