package assertion

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// ErrUnknownKey is returned by a KeySet that holds no key for a kid.
var ErrUnknownKey = errors.New("assertion: unknown key")

// Key is one verification key of a trusted issuer, pinned to one
// algorithm.
type Key struct {
	ID        string // the JWS "kid"; may be "" in a set of one key
	Algorithm string // the only "alg" it verifies: RS256, ES256, EdDSA, HS256, ...
	// Public is *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey, or
	// []byte for HS256.
	Public any
}

// KeySet finds the key that verifies an assertion. Implementations must be
// safe for concurrent use.
type KeySet interface {
	// Key returns the key with the given kid ("" when the assertion names
	// none, which only a set of one key can answer). An unknown kid
	// returns an error wrapping ErrUnknownKey.
	Key(ctx context.Context, kid string) (Key, error)
}

// MinHMACKeyLen is the shortest HS256 secret accepted (RFC 7518 section
// 3.2: a key of at least the hash's size).
const MinHMACKeyLen = 32

// MinRSABits is the smallest RSA modulus accepted.
const MinRSABits = 2048

// StaticKeySet is a KeySet of fixed keys.
type StaticKeySet struct {
	keys []Key // never written after creation
}

// NewStaticKeySet returns a KeySet of the given keys.
func NewStaticKeySet(keys ...Key) *StaticKeySet {
	return &StaticKeySet{keys: slices.Clone(keys)}
}

// HMACKeySet returns the KeySet of one HS256 secret of at least
// MinHMACKeyLen bytes.
func HMACKeySet(secret []byte) (*StaticKeySet, error) {
	if len(secret) < MinHMACKeyLen {
		return nil, fmt.Errorf("assertion: an HS256 secret must be at least %d bytes, got %d", MinHMACKeyLen, len(secret))
	}
	return NewStaticKeySet(Key{Algorithm: "HS256", Public: slices.Clone(secret)}), nil
}

// Key implements KeySet.
func (s *StaticKeySet) Key(_ context.Context, kid string) (Key, error) {
	return pick(s.keys, kid)
}

func pick(keys []Key, kid string) (Key, error) {
	if kid == "" {
		if len(keys) == 1 {
			return keys[0], nil
		}
		return Key{}, fmt.Errorf("%w: the assertion has no kid and the issuer has %d keys", ErrUnknownKey, len(keys))
	}
	for _, k := range keys {
		if k.ID == kid {
			return k, nil
		}
	}
	if len(keys) == 1 && keys[0].ID == "" {
		return keys[0], nil
	}
	return Key{}, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
}

// jwk is one member of a JWK set (RFC 7517, 7518, 8037).
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
	K   string `json:"k"`
}

// ParseJWKS reads a JWK set and returns its signature keys: RSA (RS256 by
// default, or the PS/RS algorithm its "alg" names), EC (ES256, ES384,
// ES512 by curve) and Ed25519 (EdDSA). Members meant for encryption are
// skipped; a member that is malformed, private, symmetric or of another
// type is an error, so that a mistake in the file is seen at start.
func ParseJWKS(b []byte) ([]Key, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("assertion: JWKS: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New(`assertion: JWKS: no "keys"`)
	}
	var out []Key
	for i, k := range set.Keys {
		if k.Use == "enc" {
			continue
		}
		key, err := parseJWK(k)
		if err != nil {
			return nil, fmt.Errorf("assertion: JWKS: key %d (kid %q): %w", i, k.Kid, err)
		}
		if len(set.Keys) > 1 && k.Kid == "" {
			return nil, fmt.Errorf("assertion: JWKS: key %d has no kid, which a set of several keys needs", i)
		}
		if slices.ContainsFunc(out, func(o Key) bool { return o.ID == k.Kid }) {
			return nil, fmt.Errorf("assertion: JWKS: kid %q appears twice", k.Kid)
		}
		out = append(out, key)
	}
	if len(out) == 0 {
		return nil, errors.New("assertion: JWKS: no signature keys")
	}
	return out, nil
}

func parseJWK(k jwk) (Key, error) {
	if k.D != "" || k.K != "" {
		return Key{}, errors.New("holds private or symmetric key material; publish public keys only")
	}
	b64 := base64.RawURLEncoding
	switch k.Kty {
	case "RSA":
		alg := k.Alg
		if alg == "" {
			alg = "RS256"
		}
		if !slices.Contains([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, alg) {
			return Key{}, fmt.Errorf("alg %q is not an RSA signature algorithm", alg)
		}
		n, err1 := b64.DecodeString(k.N)
		e, err2 := b64.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return Key{}, errors.New(`bad "n" or "e"`)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < MinRSABits {
			return Key{}, fmt.Errorf("RSA key of %d bits, under the minimum of %d", pub.N.BitLen(), MinRSABits)
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return Key{}, errors.New(`bad RSA exponent "e"`)
		}
		return Key{ID: k.Kid, Algorithm: alg, Public: pub}, nil
	case "EC":
		var (
			curve elliptic.Curve
			alg   string
		)
		switch k.Crv {
		case "P-256":
			curve, alg = elliptic.P256(), "ES256"
		case "P-384":
			curve, alg = elliptic.P384(), "ES384"
		case "P-521":
			curve, alg = elliptic.P521(), "ES512"
		default:
			return Key{}, fmt.Errorf("curve %q is not P-256, P-384 or P-521", k.Crv)
		}
		if k.Alg != "" && k.Alg != alg {
			return Key{}, fmt.Errorf("alg %q does not go with curve %s", k.Alg, k.Crv)
		}
		x, err1 := b64.DecodeString(k.X)
		y, err2 := b64.DecodeString(k.Y)
		size := (curve.Params().BitSize + 7) / 8
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return Key{}, errors.New(`bad "x" or "y"`)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return Key{}, fmt.Errorf("EC point: %w", err)
		}
		return Key{ID: k.Kid, Algorithm: alg, Public: pub}, nil
	case "OKP":
		if k.Crv != "Ed25519" {
			return Key{}, fmt.Errorf("OKP curve %q is not Ed25519", k.Crv)
		}
		if k.Alg != "" && k.Alg != "EdDSA" && k.Alg != "Ed25519" {
			return Key{}, fmt.Errorf("alg %q does not go with Ed25519", k.Alg)
		}
		x, err := b64.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return Key{}, errors.New(`bad "x"`)
		}
		return Key{ID: k.Kid, Algorithm: "EdDSA", Public: ed25519.PublicKey(x)}, nil
	case "oct":
		return Key{}, errors.New(`symmetric keys do not belong in a JWKS; use hs256:SECRET_FILE`)
	}
	return Key{}, fmt.Errorf("kty %q is not RSA, EC or OKP", k.Kty)
}
