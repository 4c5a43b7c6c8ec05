package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/silentrefresh/silentrefresh/claims"
)

// ErrNotFound is returned by a Store when the refresh token or family asked
// for does not exist.
var ErrNotFound = errors.New("session: not found")

// Family is one login session: every refresh token rotated from one login
// belongs to the same family.
type Family struct {
	ID        string    // random, URL-safe; the "sid" claim of access tokens
	Subject   string    // the user the session belongs to
	ClientID  string    // the OAuth2 client_id given at login, or ""
	CreatedAt time.Time // login time
	ExpiresAt time.Time // absolute expiry: no refresh after this instant
	// KeyThumbprint is the RFC 7638 thumbprint (jkt) of the DPoP key the
	// family is bound to (RFC 9449): every refresh must prove possession
	// of that key. Empty for a bearer family.
	KeyThumbprint string

	// RevokedAt is the zero time while the family is live.
	RevokedAt time.Time
	// RevokeReason says why it was revoked: "logout", "reused", "admin", ...
	RevokeReason string
}

// TokenClientID is the client_id claim of the family's tokens: its
// ClientID, or PublicClientID for a login that named no client.
func (f Family) TokenClientID() string {
	if f.ClientID == "" {
		return PublicClientID
	}
	return f.ClientID
}

// Revoked reports whether the family has been revoked.
func (f Family) Revoked() bool { return !f.RevokedAt.IsZero() }

// Check reports why a new family cannot be stored: an empty ID, or a zero
// CreatedAt or ExpiresAt. Every Store refuses such a family.
func (f Family) Check() error {
	switch {
	case f.ID == "":
		return errors.New("empty family ID")
	case f.CreatedAt.IsZero() || f.ExpiresAt.IsZero():
		return errors.New("CreatedAt and ExpiresAt are required")
	}
	return nil
}

// RefreshToken is the stored form of one refresh token. The plaintext is
// never stored: Hash is token.HashRefreshToken of it.
type RefreshToken struct {
	Hash       []byte    // token.HashRefreshToken of the token as sent to the client (32 bytes)
	FamilyID   string    // the family it belongs to
	Generation int64     // 0 for the token issued at login, then 1, 2, ...
	IssuedAt   time.Time // when it was issued
	ExpiresAt  time.Time // idle expiry: it cannot be used after this instant

	// ConsumedAt is the zero time until the token is exchanged.
	ConsumedAt time.Time
	// SuccessorHash is the hash of the token issued in exchange for this
	// one, nil until it is consumed.
	SuccessorHash []byte
}

// Consumed reports whether the token has been exchanged.
func (t RefreshToken) Consumed() bool { return !t.ConsumedAt.IsZero() }

// Check reports why a token cannot be stored: a hash that is not 32 bytes
// (SHA-256), a zero IssuedAt or ExpiresAt, or a negative generation. Every
// Store refuses such a token.
func (t RefreshToken) Check() error {
	switch {
	case len(t.Hash) != 32:
		return fmt.Errorf("token hash is %d bytes, want 32 (SHA-256)", len(t.Hash))
	case t.IssuedAt.IsZero() || t.ExpiresAt.IsZero():
		return errors.New("token IssuedAt and ExpiresAt are required")
	case t.Generation < 0:
		return errors.New("token generation is negative")
	}
	return nil
}

// Chain is what a Store reads for one exchange: the presented token, its
// family and, once the token is consumed, its successor, with what the
// rotation rules need to mint the next access token, so that a refresh is
// one read of the store.
type Chain struct {
	Family    Family
	Token     RefreshToken
	Successor *RefreshToken // nil while Token is not consumed
	// Attributes are the family's attributes; DefaultAttributes when none
	// were stored.
	Attributes Attributes
	// SubjectClaims are the user claims stored for the family's subject
	// when Attributes.LiveClaims is set; nil for none, and always nil
	// without LiveClaims.
	SubjectClaims claims.Set
}

// Change is what the rotation rules decide to write for one exchange. The
// zero Change writes nothing.
type Change struct {
	// Consume, when non-nil, marks Chain.Token consumed at ConsumedAt with
	// SuccessorHash = Consume.Hash, and inserts Consume as a new token of
	// the same family, in the same transaction.
	Consume    *RefreshToken
	ConsumedAt time.Time

	// Revoke, when true, revokes the family at RevokeAt with RevokeReason
	// (unless it is already revoked, which is kept as it is).
	Revoke       bool
	RevokeAt     time.Time
	RevokeReason string
}

// Store persists families and refresh tokens. Implementations must be safe
// for concurrent use, by several goroutines and by several processes sharing
// one database. Times are kept to at least microsecond precision and come
// back in UTC.
type Store interface {
	// SubjectStore creates families (CreateFamilyCapped).
	SubjectStore

	// Exchange reads the Chain of the refresh token whose hash is given,
	// calls decide with it, and applies the Change that decide returns, all
	// in one transaction that excludes every other Exchange or revocation of
	// the same family: two concurrent calls for one token see one another's
	// writes, never the same unconsumed state. If decide returns an error,
	// nothing is written and Exchange returns that error unchanged. decide
	// may be called more than once if the store retries the transaction, so
	// it must not have side effects. An unknown hash returns ErrNotFound
	// without calling decide.
	Exchange(ctx context.Context, tokenHash []byte, decide func(Chain) (Change, error)) error

	// Family returns the family with the given ID, or ErrNotFound.
	Family(ctx context.Context, id string) (Family, error)

	// RevokeFamily revokes the family with the given ID. Revoking a family
	// that is already revoked succeeds and keeps the first revocation. An
	// unknown ID returns ErrNotFound.
	RevokeFamily(ctx context.Context, id string, at time.Time, reason string) error

	// FamilyTokens returns every stored refresh token of the family, ordered
	// by generation. It is for audits and tests, not the request path.
	FamilyTokens(ctx context.Context, familyID string) ([]RefreshToken, error)

	// LoadOrStoreSecret returns the secret stored under name; if there is
	// none, it stores candidate and returns it. Concurrent callers, in one
	// process or several, all get the same secret.
	LoadOrStoreSecret(ctx context.Context, name string, candidate []byte) ([]byte, error)

	// AttributeStore keeps the scope and claims of families.
	AttributeStore

	// DeleteExpired removes families whose absolute expiry is before the
	// given instant, with their tokens, and returns how many families it
	// removed.
	DeleteExpired(ctx context.Context, before time.Time) (int64, error)
}
