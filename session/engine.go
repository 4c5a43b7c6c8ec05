// Package session holds the rotation rules of refresh tokens: families
// (one per login), generations, idle and absolute lifetimes, the grace
// window and reuse detection. It is pure logic over a Store and a clock; the
// stores live in store/sqlite and store/postgres.
package session

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/silentrefresh/silentrefresh/token"
)

// Defaults for the zero values of Config.
const (
	DefaultAccessTTL  = 30 * time.Minute
	DefaultRefreshTTL = 7 * 24 * time.Hour
	DefaultSessionTTL = 30 * 24 * time.Hour
	DefaultGrace      = 10 * time.Second

	DefaultMaxSessionsPerUser = 100
)

// PublicClientID is the client_id claim of access tokens from a login that
// named no client (the JSON API, or the token endpoint without client_id):
// RFC 9068 requires the claim, and public clients need no registration.
const PublicClientID = "public"

// rotationSecretName is the name of the secret that derives successors.
const rotationSecretName = "rotation"

// Config sets the lifetimes of an Engine. The zero value of each field
// means its default.
type Config struct {
	AccessTTL  time.Duration // lifetime of an access token; zero: 30m
	RefreshTTL time.Duration // idle lifetime of a refresh token; zero: 168h
	SessionTTL time.Duration // absolute lifetime of a family; zero: 720h
	// Grace is how long after its rotation a refresh token may be
	// presented again and answered with the same successor. Zero means
	// 10s; a negative value turns the grace window off.
	Grace time.Duration
	// MaxSessionsPerUser caps the live sessions of one subject: a login
	// past it revokes the least recently refreshed one. Zero means 100; a
	// negative value means no cap.
	MaxSessionsPerUser int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Minter mints access tokens. token.Issuer implements it.
type Minter interface {
	Mint(ctx context.Context, c token.Claims) (string, error)
}

// Outcome says how a Grant came to be.
type Outcome string

// The outcomes of a successful Login or Refresh.
const (
	OutcomeLogin       Outcome = "login"
	OutcomeRotated     Outcome = "rotated"
	OutcomeGraceReplay Outcome = "grace_replay"
)

// Grant is what a login or a refresh hands to the client.
type Grant struct {
	IssuedAt         time.Time // the engine's time of the login or refresh
	AccessToken      string
	AccessExpiresAt  time.Time // never after Family.ExpiresAt
	RefreshToken     string
	RefreshExpiresAt time.Time // never after Family.ExpiresAt
	Family           Family
	Outcome          Outcome
	Scope            string // the scope of AccessToken; "" for none
	// Evicted are the sessions a login revoked to stay within
	// Config.MaxSessionsPerUser; nil for a refresh.
	Evicted []string
	// KeyThumbprint is the jkt of the DPoP key the access token is bound
	// to (its cnf claim), or "" for a bearer token.
	KeyThumbprint string
}

// Reason says why a refresh was refused; it is the error_description of the
// invalid_grant answer.
type Reason string

// The reasons of a refused refresh.
const (
	ReasonUnknown    Reason = "unknown"
	ReasonRevoked    Reason = "revoked"
	ReasonExpired    Reason = "expired"
	ReasonSuperseded Reason = "superseded"
	ReasonReused     Reason = "reused"
	// ReasonClientMismatch: the token was issued to another client_id.
	ReasonClientMismatch Reason = "client_mismatch"
	// ReasonProofMissing: the token of a family bound to a DPoP key was
	// presented without proof of that key. It was stolen: the family is
	// revoked.
	ReasonProofMissing Reason = "dpop_proof_missing"
	// ReasonKeyMismatch: the token of a family bound to a DPoP key was
	// presented with proof of another key. The family is revoked.
	ReasonKeyMismatch Reason = "dpop_key_mismatch"
)

// ErrInvalidGrant is matched (errors.Is) by every *GrantError.
var ErrInvalidGrant = errors.New("session: invalid grant")

// ErrSessionEnded is returned by Engine.Session for a family that is revoked
// or past its absolute expiry.
var ErrSessionEnded = errors.New("session: ended")

// GrantError is the error of a refused refresh. The client must log in
// again.
type GrantError struct {
	Reason Reason
	// SessionID is the family of the presented token, when it is known;
	// for audit logs.
	SessionID string
	// Revoked is true when this refusal revoked the family (reuse after
	// grace, superseded inside it, or a DPoP-bound family's token without
	// proof of its key): a sign that the token was stolen, for the
	// operator's audit log.
	Revoked bool
}

// Error says which reason refused the refresh.
func (e *GrantError) Error() string { return "session: invalid grant: " + string(e.Reason) }

// Is makes errors.Is(err, ErrInvalidGrant) true.
func (e *GrantError) Is(target error) bool { return target == ErrInvalidGrant }

// Engine applies the rotation rules. It is safe for concurrent use; the
// atomicity of a rotation comes from Store.Exchange.
type Engine struct {
	store  Store
	minter Minter
	cfg    Config
	secret []byte // derives successors; shared by every replica
}

// NewEngine returns an Engine over st. It loads the rotation secret from the
// store, creating it on first start.
func NewEngine(ctx context.Context, st Store, m Minter, cfg Config) (*Engine, error) {
	if st == nil || m == nil {
		return nil, errors.New("session: NewEngine needs a Store and a Minter")
	}
	if cfg.AccessTTL < 0 || cfg.RefreshTTL < 0 || cfg.SessionTTL < 0 {
		return nil, errors.New("session: lifetimes must be positive")
	}
	if cfg.AccessTTL == 0 {
		cfg.AccessTTL = DefaultAccessTTL
	}
	if cfg.RefreshTTL == 0 {
		cfg.RefreshTTL = DefaultRefreshTTL
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.MaxSessionsPerUser == 0 {
		cfg.MaxSessionsPerUser = DefaultMaxSessionsPerUser
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	candidate := make([]byte, 32)
	if _, err := rand.Read(candidate); err != nil {
		return nil, fmt.Errorf("session: generate rotation secret: %w", err)
	}
	secret, err := st.LoadOrStoreSecret(ctx, rotationSecretName, candidate)
	if err != nil {
		return nil, fmt.Errorf("session: load rotation secret: %w", err)
	}
	if len(secret) < 32 {
		return nil, fmt.Errorf("session: stored rotation secret is %d bytes, want 32", len(secret))
	}
	return &Engine{store: st, minter: m, cfg: cfg, secret: secret}, nil
}

// Config returns the engine's configuration with defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// now is the engine's clock, in UTC at microsecond precision, which every
// store keeps exactly.
func (e *Engine) now() time.Time {
	return e.cfg.Now().UTC().Truncate(time.Microsecond)
}

// Login opens a new family for subject and returns its first tokens. Its
// tokens carry the subject's user claims (DefaultAttributes); LoginWith
// sets scope and claims. A login past Config.MaxSessionsPerUser revokes the
// subject's least recently refreshed live sessions (Grant.Evicted).
func (e *Engine) Login(ctx context.Context, subject, clientID string) (Grant, error) {
	return e.LoginBound(ctx, subject, clientID, "")
}

// LoginBound is Login for a client that proved possession of the DPoP key
// whose RFC 7638 thumbprint is jkt: the family is bound to that key, its
// access tokens carry it (cnf.jkt), and every refresh must prove the same
// key (see RefreshBound). An empty jkt opens a bearer family, as Login.
func (e *Engine) LoginBound(ctx context.Context, subject, clientID, jkt string) (Grant, error) {
	return e.LoginWith(ctx, Login{Subject: subject, ClientID: clientID, Attributes: DefaultAttributes, KeyThumbprint: jkt})
}

func (e *Engine) login(ctx context.Context, l Login) (Grant, error) {
	subject, clientID, jkt := l.Subject, l.ClientID, l.KeyThumbprint
	now := e.now()
	rt, err := token.NewRefreshToken(now)
	if err != nil {
		return Grant{}, fmt.Errorf("session: login: %w", err)
	}
	fam := Family{
		ID:        token.NewID(),
		Subject:   subject,
		ClientID:  clientID,
		CreatedAt: now,
		ExpiresAt: now.Add(e.cfg.SessionTTL),

		KeyThumbprint: l.KeyThumbprint,
	}
	first := RefreshToken{
		Hash:      token.HashRefreshToken(rt),
		FamilyID:  fam.ID,
		IssuedAt:  now,
		ExpiresAt: e.refreshExpiry(now, fam),
	}
	evicted, err := e.store.CreateFamilyCapped(ctx, fam, first, e.cfg.MaxSessionsPerUser, RevokeSessionCap)
	if err != nil {
		return Grant{}, fmt.Errorf("session: login: %w", err)
	}
	if err := e.putAttributes(ctx, fam, l.Attributes); err != nil {
		return Grant{}, err
	}
	m := mintAttrs(l.Attributes, l.SubjectClaims, "")
	m.jkt = jkt
	g, err := e.grant(ctx, now, fam, rt, first.ExpiresAt, OutcomeLogin, m)
	if err != nil {
		return Grant{}, err
	}
	g.Evicted = evicted
	return g, nil
}

// Refresh exchanges a refresh token by the rules of DESIGN.md: rotate it,
// answer the same successor again inside the grace window, or refuse with a
// *GrantError. Some refusals revoke the whole family, since they mean that
// someone else holds a token of it (GrantError.Revoked): a consumed token
// presented after the grace window (reused), one presented inside it after
// its successor was consumed too (superseded), and a DPoP-bound family's
// token presented without proof of its key (see RefreshBound). Refresh
// presents no key.
func (e *Engine) Refresh(ctx context.Context, refreshToken, clientID string) (Grant, error) {
	return e.RefreshBound(ctx, refreshToken, clientID, "")
}

// RefreshBound is Refresh for a request that proved possession of the DPoP
// key whose thumbprint is jkt ("" for none). The token of a family bound to
// a key (LoginBound) must come with proof of that very key, grace replays
// included; without one, or with another key, it was stolen: the family is
// revoked and the refusal is ReasonProofMissing or ReasonKeyMismatch. A
// bearer family stays a bearer family, but its new access token is bound to
// the key proved, if any.
func (e *Engine) RefreshBound(ctx context.Context, refreshToken, clientID, jkt string) (Grant, error) {
	return e.RefreshWith(ctx, RefreshRequest{Token: refreshToken, ClientID: clientID, KeyThumbprint: jkt})
}

// refresh applies the rotation rules to req in one Store.Exchange. The
// access token is signed while the store commits (signahead.go).
func (e *Engine) refresh(ctx context.Context, req RefreshRequest) (Grant, error) {
	now := e.now()
	hash := token.HashRefreshToken(req.Token)
	successor := token.SuccessorToken(e.secret, req.Token, now)
	succHash := token.HashRefreshToken(successor)

	sa := newSignAhead()
	done := make(chan error, 1)
	go func() {
		done <- e.store.Exchange(ctx, hash, func(c Chain) (Change, error) {
			d, ch, err := e.decide(c, req, now, successor, succHash)
			sa.decided(d, err == nil && d.refusal == "")
			return ch, err
		})
	}()
	var (
		err      error
		early    Grant
		earlySeq int // the decision early was signed for; 0 for none
	)
	select {
	case err = <-done:
	case <-sa.ready:
		// The store has decided and is writing and committing: sign
		// meanwhile. Nothing of it is answered unless the exchange
		// returns without error, below.
		if d, seq, ok := sa.latest(); ok {
			if g, gerr := e.grantFor(ctx, now, req, d); gerr == nil {
				early, earlySeq = g, seq
			}
		}
		err = <-done
	}
	d, seq, _ := sa.latest()
	switch {
	case errors.Is(err, ErrNotFound):
		return Grant{}, &GrantError{Reason: ReasonUnknown}
	case err != nil:
		var se *ScopeError
		if errors.As(err, &se) {
			return Grant{}, err
		}
		return Grant{}, fmt.Errorf("session: refresh: %w", err)
	case d.refusal != "":
		return Grant{}, &GrantError{Reason: d.refusal, SessionID: d.fam.ID, Revoked: d.revoked}
	case earlySeq != 0 && earlySeq == seq:
		return early, nil
	}
	return e.grantFor(ctx, now, req, d)
}

// grantFor mints the grant of a refresh that decide granted.
func (e *Engine) grantFor(ctx context.Context, now time.Time, req RefreshRequest, d decision) (Grant, error) {
	d.mint.jkt = d.fam.KeyThumbprint
	if d.mint.jkt == "" {
		d.mint.jkt = req.KeyThumbprint
	}
	return e.grant(ctx, now, d.fam, d.successor, d.expires, d.outcome, d.mint)
}

// decision is what decide concluded about one refresh, besides the Change.
type decision struct {
	outcome Outcome
	refusal Reason
	revoked bool // the refusal revokes the family
	fam     Family
	expires time.Time // of the refresh token answered
	mint    minted    // what the new access token carries
	// successor is the refresh token answered: the one rotated to, or
	// the stored successor a grace replay answers again.
	successor string
}

// decide applies the rotation rules to the chain c of req's token at now;
// successor is the token a rotation at now derives from it, succHash its
// hash. It is pure: it
// reads only its arguments and the engine's configuration and clock, as a
// store may call it more than once. A scope wider than the session's is a
// *ScopeError, which writes nothing.
func (e *Engine) decide(c Chain, req RefreshRequest, now time.Time, successor string, succHash []byte) (decision, Change, error) {
	f, t, jkt := c.Family, c.Token, req.KeyThumbprint
	d := decision{fam: f}
	switch {
	case f.Revoked():
		d.refusal = ReasonRevoked
		return d, Change{}, nil
	case f.KeyThumbprint != "" && f.KeyThumbprint != jkt:
		// A DPoP-bound token without its key was stolen: the family is
		// revoked, whatever else the request says.
		d.refusal, d.revoked = ReasonKeyMismatch, true
		if jkt == "" {
			d.refusal = ReasonProofMissing
		}
		return d, Change{Revoke: true, RevokeAt: now, RevokeReason: string(d.refusal)}, nil
	case c.Attributes.ConfidentialClient && req.ClientID != f.ClientID:
		d.refusal = ReasonClientMismatch
		return d, Change{}, nil
	}
	scope, err := narrowScope(req.Scope, c.Attributes.Scope)
	if err != nil {
		return decision{}, Change{}, err
	}
	d.mint = mintAttrs(c.Attributes, c.SubjectClaims, scope)
	switch {
	case !now.Before(t.ExpiresAt) || !now.Before(f.ExpiresAt):
		d.refusal = ReasonExpired
		return d, Change{}, nil
	case !t.Consumed() && clientMismatch(req.ClientID, f.ClientID):
		d.refusal = ReasonClientMismatch
		return d, Change{}, nil
	case !t.Consumed():
		d.outcome, d.successor = OutcomeRotated, successor
		d.expires = e.refreshExpiry(now, f)
		next := &RefreshToken{
			Hash:       succHash,
			FamilyID:   f.ID,
			Generation: t.Generation + 1,
			IssuedAt:   now,
			ExpiresAt:  d.expires,
		}
		// The grace window counts from the decision, not from the
		// request's arrival: time spent waiting for the writer must not
		// eat into the window of the client's retry.
		return d, Change{Consume: next, ConsumedAt: e.now()}, nil
	case e.cfg.Grace > 0 && !now.After(t.ConsumedAt.Add(e.cfg.Grace)):
		s := c.Successor
		var again string
		ok := s != nil
		if ok {
			// The successor was issued at the rotation, which its
			// stored hash records: derive it again for that instant.
			again, ok = token.ReplaySuccessor(e.secret, req.Token, s.Hash)
		}
		if !ok {
			// The stored successor is not the derived one: the secret
			// changed under us. Refuse rather than fork the chain.
			d.refusal = ReasonSuperseded
			return d, Change{}, nil
		}
		if s.Consumed() {
			// The chain moved on past a token somebody else still holds:
			// one of the two holders is a thief, and we cannot tell
			// which. End the session for both, as for reuse.
			d.refusal, d.revoked = ReasonSuperseded, true
			return d, Change{Revoke: true, RevokeAt: now, RevokeReason: string(ReasonSuperseded)}, nil
		}
		if clientMismatch(req.ClientID, f.ClientID) {
			d.refusal = ReasonClientMismatch
			return d, Change{}, nil
		}
		d.outcome, d.successor = OutcomeGraceReplay, again
		d.expires = s.ExpiresAt
		return d, Change{}, nil
	default:
		d.refusal, d.revoked = ReasonReused, true
		return d, Change{Revoke: true, RevokeAt: now, RevokeReason: string(ReasonReused)}, nil
	}
}

// Logout revokes the family of a refresh token. An unknown token is not an
// error: logging out is idempotent.
func (e *Engine) Logout(ctx context.Context, refreshToken string) error {
	if refreshToken == "" {
		return nil
	}
	now := e.now()
	err := e.store.Exchange(ctx, token.HashRefreshToken(refreshToken), func(c Chain) (Change, error) {
		if c.Family.Revoked() {
			return Change{}, nil
		}
		return Change{Revoke: true, RevokeAt: now, RevokeReason: "logout"}, nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("session: logout: %w", err)
	}
	return nil
}

// RevokeSession revokes the family with the given ID (the "sid" of its
// access tokens). An unknown ID is not an error.
func (e *Engine) RevokeSession(ctx context.Context, sessionID, reason string) error {
	if sessionID == "" {
		return nil
	}
	err := e.store.RevokeFamily(ctx, sessionID, e.now(), reason)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("session: revoke: %w", err)
	}
	return nil
}

// Session returns the live family with the given ID. A family that is
// unknown, revoked or past its absolute expiry gives an error wrapping
// ErrSessionEnded.
func (e *Engine) Session(ctx context.Context, sessionID string) (Family, error) {
	if sessionID == "" {
		return Family{}, fmt.Errorf("%w: no session id", ErrSessionEnded)
	}
	f, err := e.store.Family(ctx, sessionID)
	switch {
	case errors.Is(err, ErrNotFound):
		return Family{}, fmt.Errorf("%w: unknown session", ErrSessionEnded)
	case err != nil:
		return Family{}, fmt.Errorf("session: look up: %w", err)
	case f.Revoked():
		return f, fmt.Errorf("%w: revoked (%s)", ErrSessionEnded, f.RevokeReason)
	case !e.now().Before(f.ExpiresAt):
		return f, fmt.Errorf("%w: expired", ErrSessionEnded)
	}
	return f, nil
}

// refreshExpiry is the idle expiry of a token issued at now, capped by the
// family's absolute expiry.
func (e *Engine) refreshExpiry(now time.Time, f Family) time.Time {
	return minTime(now.Add(e.cfg.RefreshTTL), f.ExpiresAt)
}

// grant mints the access token that goes with a refresh token, with the
// scope, claims and DPoP key (m.jkt, unless empty) of m.
func (e *Engine) grant(ctx context.Context, now time.Time, f Family, refresh string, refreshExp time.Time, o Outcome, m minted) (Grant, error) {
	exp := accessExpiry(now, e.cfg.AccessTTL, f.ExpiresAt)
	cid := f.TokenClientID()
	at, err := e.minter.Mint(ctx, token.Claims{
		Subject:   f.Subject,
		ExpiresAt: exp,
		IssuedAt:  now,
		ClientID:  cid,
		SessionID: f.ID,
		Scope:     m.scope,
		Extra:     m.claims,

		KeyThumbprint: m.jkt,
	})
	if err != nil {
		return Grant{}, fmt.Errorf("session: mint access token: %w", err)
	}
	return Grant{
		IssuedAt:         now,
		AccessToken:      at,
		AccessExpiresAt:  exp,
		RefreshToken:     refresh,
		RefreshExpiresAt: refreshExp,
		Family:           f,
		Outcome:          o,
		Scope:            m.scope,
		KeyThumbprint:    m.jkt,
	}, nil
}

// clientMismatch reports whether a client_id was presented that is not the
// one the family was issued to. A token from a login without client_id may
// be refreshed by any client, and a refresh without client_id is accepted,
// as public clients need no registration.
func clientMismatch(presented, issued string) bool {
	return presented != "" && issued != "" && presented != issued
}

// accessExpiry is when an access token minted at now expires. A JWT's exp
// counts whole seconds, so the instant is rounded up to one: a token never
// lives shorter than its lifetime (which matters when it is 1s). It never
// outlives its session, though: past the session's end it is rounded down.
func accessExpiry(now time.Time, ttl time.Duration, sessionEnd time.Time) time.Time {
	exp := now.Add(ttl)
	if t := exp.Truncate(time.Second); !t.Equal(exp) {
		exp = t.Add(time.Second)
	}
	if exp.After(sessionEnd) {
		exp = sessionEnd.Truncate(time.Second)
	}
	return exp
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
