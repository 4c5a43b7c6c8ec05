package token

import (
	"context"
	"crypto/ed25519"
	"errors"
	"time"
)

// AlgEdDSA is the JWS algorithm of Ed25519 keys (RFC 8037).
const AlgEdDSA = "EdDSA"

// ErrKeyNotFound is returned by a KeyStore or KeySet for an unknown key ID.
var ErrKeyNotFound = errors.New("token: signing key not found")

// Key is one signing key. Its algorithm is pinned: a token is only ever
// verified with the algorithm of the key its "kid" names.
type Key struct {
	ID         string             // the JWS "kid"
	Algorithm  string             // AlgEdDSA
	PrivateKey ed25519.PrivateKey // 64 bytes
	CreatedAt  time.Time          // the newest key signs
}

// KeyStore keeps signing keys where every replica of the server sees them.
// Implementations must be safe for concurrent use.
type KeyStore interface {
	// SigningKeys returns every stored key, newest first.
	SigningKeys(ctx context.Context) ([]Key, error)
	// AddSigningKey stores a new key.
	AddSigningKey(ctx context.Context, k Key) error
	// DeleteSigningKey removes a key, so that tokens signed with it no
	// longer verify. An unknown ID returns ErrKeyNotFound.
	DeleteSigningKey(ctx context.Context, id string) error
}

// Claims are the claims of an access token (RFC 9068).
type Claims struct {
	Issuer    string    // "iss"
	Subject   string    // "sub"
	Audience  []string  // "aud"
	ExpiresAt time.Time // "exp"
	IssuedAt  time.Time // "iat"
	ID        string    // "jti"
	ClientID  string    // "client_id"
	SessionID string    // "sid": the session (family) the token belongs to
	Scope     string    // "scope", space-separated, may be empty
	// Extra are further claims (roles, tenant, ...); nil for none. Mint
	// refuses names the members above own.
	Extra map[string]any
	// KeyThumbprint is the "jkt" member of the "cnf" claim (RFC 9449
	// section 6.1): the RFC 7638 thumbprint of the DPoP key the token is
	// bound to. Empty for a bearer token.
	KeyThumbprint string
}
