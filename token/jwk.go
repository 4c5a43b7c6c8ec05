package token

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// PublicKey is the verifying half of a signing key.
type PublicKey struct {
	ID        string // the JWS "kid"
	Algorithm string // the only JWS "alg" this key verifies: AlgEdDSA
	Key       ed25519.PublicKey
}

// KeySet finds the public key that verifies a token. Implementations must
// be safe for concurrent use.
type KeySet interface {
	// PublicKey returns the key with the given ID. An unknown ID returns an
	// error wrapping ErrKeyNotFound.
	PublicKey(ctx context.Context, kid string) (PublicKey, error)
}

// GenerateKey returns a new Ed25519 signing key created at now. Its ID is
// the RFC 7638 JWK thumbprint of its public key (see Thumbprint).
func GenerateKey(now time.Time) (Key, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("token: generating ed25519 key: %w", err)
	}
	return Key{
		ID:         Thumbprint(pub),
		Algorithm:  AlgEdDSA,
		PrivateKey: priv,
		CreatedAt:  now,
	}, nil
}

// Thumbprint returns the RFC 7638 JWK thumbprint of an Ed25519 public key,
// base64url encoded without padding: the SHA-256 of
// {"crv":"Ed25519","kty":"OKP","x":"..."} (RFC 8037, section 2).
func Thumbprint(pub ed25519.PublicKey) string {
	// The members are fixed and in lexicographic order, with no
	// whitespace, as RFC 7638 requires; x is base64url, so it needs no
	// JSON escaping.
	canon := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// EnsureSigningKey adds a new key created at now to ks if ks holds none.
// Replicas starting at the same moment may each add one; that is harmless,
// since the newest key signs and every stored key verifies.
func EnsureSigningKey(ctx context.Context, ks KeyStore, now time.Time) error {
	keys, err := ks.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("token: reading signing keys: %w", err)
	}
	if len(keys) > 0 {
		return nil
	}
	k, err := GenerateKey(now)
	if err != nil {
		return err
	}
	if err := ks.AddSigningKey(ctx, k); err != nil {
		return fmt.Errorf("token: adding signing key: %w", err)
	}
	return nil
}

// publicKeyOf returns the public half of k, or false if k is not a usable
// Ed25519 key.
func publicKeyOf(k Key) (PublicKey, bool) {
	if k.ID == "" || k.Algorithm != AlgEdDSA || len(k.PrivateKey) != ed25519.PrivateKeySize {
		return PublicKey{}, false
	}
	return PublicKey{ID: k.ID, Algorithm: k.Algorithm, Key: k.PrivateKey.Public().(ed25519.PublicKey)}, true
}

// jwk is one member of a JWK set (RFC 7517), restricted to what Ed25519
// keys (RFC 8037) use.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// JWKS returns the RFC 7517 JWK set of the public keys in ks, newest first:
//
//	{"keys":[{"kty":"OKP","crv":"Ed25519","x":"...","kid":"...","alg":"EdDSA","use":"sig"}]}
//
// Keys that are not Ed25519 are left out.
func JWKS(ctx context.Context, ks KeyStore) ([]byte, error) {
	keys, err := ks.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("token: reading signing keys: %w", err)
	}
	set := jwkSet{Keys: make([]jwk, 0, len(keys))}
	for _, k := range keys {
		pk, ok := publicKeyOf(k)
		if !ok {
			continue
		}
		set.Keys = append(set.Keys, jwk{
			Kty: "OKP",
			Crv: "Ed25519",
			X:   base64.RawURLEncoding.EncodeToString(pk.Key),
			Kid: pk.ID,
			Alg: pk.Algorithm,
			Use: "sig",
		})
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("token: encoding JWKS: %w", err)
	}
	return b, nil
}

// parseJWKS reads a JWK set and returns its Ed25519 signing keys by ID.
// Members of other types, or meant for encryption, are skipped; a member
// that claims to be an Ed25519 key but is malformed is an error.
func parseJWKS(b []byte) (map[string]PublicKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("token: decoding JWKS: %w", err)
	}
	if set.Keys == nil {
		return nil, fmt.Errorf("token: decoding JWKS: no \"keys\" member")
	}
	keys := make(map[string]PublicKey, len(set.Keys))
	for i, raw := range set.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			// A member of another shape (an RSA key with numeric
			// fields, say) is not ours to judge.
			continue
		}
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if k.Alg != "" && k.Alg != AlgEdDSA {
			continue
		}
		x, err := base64.RawURLEncoding.Strict().DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("token: decoding JWKS: key %d (kid %q): bad \"x\"", i, k.Kid)
		}
		if k.Kid == "" {
			return nil, fmt.Errorf("token: decoding JWKS: key %d has no \"kid\"", i)
		}
		if _, dup := keys[k.Kid]; dup {
			return nil, fmt.Errorf("token: decoding JWKS: kid %q appears twice", k.Kid)
		}
		keys[k.Kid] = PublicKey{ID: k.Kid, Algorithm: AlgEdDSA, Key: ed25519.PublicKey(x)}
	}
	return keys, nil
}

// StaticKeySet is a KeySet of fixed keys, for tests and for verifiers that
// are given their keys by configuration.
type StaticKeySet struct {
	keys map[string]PublicKey // never written after NewStaticKeySet
}

// NewStaticKeySet returns a KeySet holding exactly the given keys.
func NewStaticKeySet(keys ...PublicKey) *StaticKeySet {
	m := make(map[string]PublicKey, len(keys))
	for _, k := range keys {
		m[k.ID] = k
	}
	return &StaticKeySet{keys: m}
}

// PublicKey implements KeySet.
func (s *StaticKeySet) PublicKey(_ context.Context, kid string) (PublicKey, error) {
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return PublicKey{}, fmt.Errorf("%w: kid %q", ErrKeyNotFound, kid)
}
