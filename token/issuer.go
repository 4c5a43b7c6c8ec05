package token

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// TypeAccessToken is the JWS "typ" header of access tokens (RFC 9068).
const TypeAccessToken = "at+jwt"

// ErrNoSigningKey is returned by an Issuer whose KeyStore holds no usable
// signing key; EnsureSigningKey adds one.
var ErrNoSigningKey = errors.New("token: no signing key in the store")

// Issuer mints access tokens signed with the newest key of a KeyStore. It is
// safe for concurrent use.
type Issuer struct {
	ks       KeyStore
	issuer   string
	audience []string

	// signer is the key Mint signs with; nil until the first Mint or
	// Reload. Mint only ever loads it, so minting takes no lock.
	signer atomic.Pointer[signer]
	// mu serialises reads of the store for the signing key, so that many
	// first Mints at once read it once.
	mu sync.Mutex
}

// signer is a signing key with its encoded JWS header, ready to use.
type signer struct {
	key    ed25519.PrivateKey
	kid    string
	header string    // base64url of the header JSON, followed by "."
	loaded time.Time // when it was read from the store
}

// IssuerMaxAge is how long an Issuer signs with the key it read before it
// reads the store again, so that a key rotated on another replica is
// picked up without a restart.
const IssuerMaxAge = 5 * time.Second

// NewIssuer returns an Issuer that signs with the newest key in ks and fills
// in the given issuer and audience when the claims leave them empty. The key
// is read from ks on the first Mint and cached; Reload reads it again.
func NewIssuer(ks KeyStore, issuer string, audience []string) *Issuer {
	return &Issuer{ks: ks, issuer: issuer, audience: append([]string(nil), audience...)}
}

// Reload reads the signing keys from the store again and signs with the
// newest from then on. Call it after adding a key (rotation) or deleting
// one. On error the key in use is kept.
func (i *Issuer) Reload(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	_, err := i.loadLocked(ctx)
	return err
}

// KeyID returns the ID of the key Mint signs with, reading the store if no
// key has been loaded yet.
func (i *Issuer) KeyID(ctx context.Context) (string, error) {
	s, err := i.current(ctx)
	if err != nil {
		return "", err
	}
	return s.kid, nil
}

func (i *Issuer) current(ctx context.Context) (*signer, error) {
	s := i.signer.Load()
	if s != nil && time.Since(s.loaded) < IssuerMaxAge {
		return s, nil
	}
	if s != nil {
		// Stale: one caller re-reads the store while the others go on
		// with the key they have. If the store fails, the key in use is
		// kept for another IssuerMaxAge: minting does not depend on the
		// store being up.
		if !i.mu.TryLock() {
			return s, nil
		}
		defer i.mu.Unlock()
		if fresh := i.signer.Load(); fresh != s {
			return fresh, nil
		}
		if n, err := i.loadLocked(ctx); err == nil {
			return n, nil
		}
		i.signer.Store(&signer{key: s.key, kid: s.kid, header: s.header, loaded: time.Now()})
		return s, nil
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if s := i.signer.Load(); s != nil {
		return s, nil
	}
	return i.loadLocked(ctx)
}

// loadLocked reads the newest key from the store and installs it. i.mu must
// be held.
func (i *Issuer) loadLocked(ctx context.Context) (*signer, error) {
	keys, err := i.ks.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("token: reading signing keys: %w", err)
	}
	var newest *Key
	for j := range keys {
		k := &keys[j]
		if _, ok := publicKeyOf(*k); !ok {
			continue
		}
		if newest == nil || k.CreatedAt.After(newest.CreatedAt) {
			newest = k
		}
	}
	if newest == nil {
		return nil, ErrNoSigningKey
	}
	h, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid"`
	}{AlgEdDSA, TypeAccessToken, newest.ID})
	if err != nil {
		return nil, fmt.Errorf("token: encoding header: %w", err)
	}
	s := &signer{
		key:    newest.PrivateKey,
		kid:    newest.ID,
		header: base64.RawURLEncoding.EncodeToString(h) + ".",
		loaded: time.Now(),
	}
	i.signer.Store(s)
	return s, nil
}

// payload is the JSON form of Claims in a minted token.
type payload struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      []string `json:"aud"`
	Exp      int64    `json:"exp"`
	Iat      int64    `json:"iat"`
	Jti      string   `json:"jti"`
	ClientID string   `json:"client_id,omitempty"`
	Sid      string   `json:"sid,omitempty"`
	Scope    string   `json:"scope,omitempty"`
	Cnf      *cnf     `json:"cnf,omitempty"`
}

// cnf is the confirmation claim of a DPoP-bound token (RFC 7800, RFC 9449
// section 6.1).
type cnf struct {
	JKT string `json:"jkt"`
}

// Mint signs an access token with the claims c. It fills in the Issuer's
// issuer and audience when c leaves them empty, a random ID (jti) when c.ID
// is empty, and the current time when c.IssuedAt is zero (callers with
// their own clock should set IssuedAt). c.Subject and c.ExpiresAt are
// required. Times are encoded in whole seconds. The header is
// {"alg":"EdDSA","typ":"at+jwt","kid":...}. Mint is safe for concurrent
// use and, once a key is loaded, touches no lock and no store.
func (i *Issuer) Mint(ctx context.Context, c Claims) (string, error) {
	if c.Subject == "" {
		return "", errors.New("token: mint: no subject")
	}
	if c.ExpiresAt.IsZero() {
		return "", errors.New("token: mint: no expiry")
	}
	p := payload{
		Iss:      c.Issuer,
		Sub:      c.Subject,
		Aud:      c.Audience,
		Exp:      c.ExpiresAt.Unix(),
		Jti:      c.ID,
		ClientID: c.ClientID,
		Sid:      c.SessionID,
		Scope:    c.Scope,
	}
	if c.KeyThumbprint != "" {
		p.Cnf = &cnf{JKT: c.KeyThumbprint}
	}
	if p.Iss == "" {
		p.Iss = i.issuer
	}
	if len(p.Aud) == 0 {
		p.Aud = i.audience
	}
	if p.Iss == "" || len(p.Aud) == 0 {
		return "", errors.New("token: mint: no issuer or no audience")
	}
	if p.Jti == "" {
		p.Jti = NewID()
	}
	if c.IssuedAt.IsZero() {
		p.Iat = time.Now().Unix()
	} else {
		p.Iat = c.IssuedAt.Unix()
	}
	s, err := i.current(ctx)
	if err != nil {
		return "", fmt.Errorf("token: mint: %w", err)
	}
	body, err := json.Marshal(&p)
	if err != nil {
		return "", fmt.Errorf("token: mint: encoding claims: %w", err)
	}
	if body, err = appendExtra(body, c.Extra); err != nil {
		return "", fmt.Errorf("token: mint: %w", err)
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(s.header)+enc.EncodedLen(len(body))+1+enc.EncodedLen(ed25519.SignatureSize))
	buf = append(buf, s.header...)
	buf = enc.AppendEncode(buf, body)
	sig := ed25519.Sign(s.key, buf)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}
