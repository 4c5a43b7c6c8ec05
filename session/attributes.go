package session

import (
	"context"

	"github.com/silentrefresh/silentrefresh/claims"
)

// Attributes are what a session puts into each of its access tokens besides
// its subject. They are fixed when the session opens.
type Attributes struct {
	// Scope is the scope granted at login (RFC 6749 section 3.3), scope
	// tokens separated by single spaces; "" for none. A refresh may ask for
	// less, never for more.
	Scope string
	// Claims are the extra claims of the login (the allow-listed claims of
	// an assertion, the claims of an Authenticator); nil for none.
	Claims claims.Set
	// LiveClaims makes every access token also carry the claims stored
	// for the subject as a built-in user at the time it is minted, so that
	// a change to them reaches the session at its next refresh.
	LiveClaims bool
	// ConfidentialClient is true for a session opened by a confidential
	// client that authenticated (Family.ClientID): only a refresh that
	// names that client, which the server passes only once the client has
	// authenticated, may rotate its tokens. A refresh without it is refused
	// (ReasonClientMismatch), so a stolen refresh token of a confidential
	// client is useless without the client's secret.
	ConfidentialClient bool
}

// DefaultAttributes are the attributes of a family for which none were
// stored: a login of a built-in user without scope, as every login was
// before attributes existed.
var DefaultAttributes = Attributes{LiveClaims: true}

// isDefault reports whether a are the DefaultAttributes, which need no row.
func (a Attributes) isDefault() bool {
	return a.Scope == "" && len(a.Claims) == 0 && a.LiveClaims && !a.ConfidentialClient
}

// TokenInfo is one refresh token as a lookup reads it, without locks: the
// token, its family, the family's attributes and, for LiveClaims, the
// claims stored for the family's subject.
type TokenInfo struct {
	Token         RefreshToken
	Family        Family
	Attributes    Attributes // DefaultAttributes when none were stored
	SubjectClaims claims.Set // the subject's stored user claims, nil for none
}

// AttributeStore keeps the attributes of families. The session Store
// includes it.
type AttributeStore interface {
	// PutAttributes stores the attributes of an existing family. The
	// engine calls it once, right after CreateFamilyCapped and before the
	// family's first token leaves the server. An unknown family returns
	// ErrNotFound.
	PutAttributes(ctx context.Context, familyID string, a Attributes) error

	// LookupToken reads the refresh token whose hash is given with its
	// family, the family's attributes (DefaultAttributes when none were
	// stored) and the user claims stored for the family's subject, without
	// taking any lock. An unknown hash returns ErrNotFound.
	LookupToken(ctx context.Context, tokenHash []byte) (TokenInfo, error)
}
