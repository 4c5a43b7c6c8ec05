package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// The JWS algorithms a Verifier may accept and a Signer produces.
const (
	AlgES256 = "ES256" // ECDSA with P-256 and SHA-256 (RFC 7518 section 3.4)
	AlgEdDSA = "EdDSA" // Ed25519 (RFC 8037)
)

// DefaultAlgorithms are the algorithms a Verifier accepts when its
// Config names none, in the order the server advertises them.
var DefaultAlgorithms = []string{AlgES256, AlgEdDSA}

var b64 = base64.RawURLEncoding.Strict()

// privateMembers are the JWK members that carry private key material, of
// any key type (RFC 7518 section 6): a proof's jwk must have none.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// parseJWK reads the jwk header of a proof and returns its public key,
// after checking that it is a public key of the type alg needs.
func parseJWK(raw json.RawMessage, alg string) (crypto.PublicKey, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return nil, errors.New("jwk header is not a JSON object")
	}
	for _, m := range privateMembers {
		if _, ok := members[m]; ok {
			return nil, fmt.Errorf("jwk header holds private key material (%q)", m)
		}
	}
	var k struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Y   string `json:"y"`
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, errors.New("jwk header has a member of the wrong type")
	}
	if k.Alg != "" && k.Alg != alg {
		return nil, fmt.Errorf("jwk names alg %q but the proof is signed with %q", k.Alg, alg)
	}
	switch alg {
	case AlgES256:
		if k.Kty != "EC" || k.Crv != "P-256" {
			return nil, fmt.Errorf("alg %s needs a jwk of kty EC and crv P-256, not kty %q crv %q", alg, k.Kty, k.Crv)
		}
		x, errX := b64.DecodeString(k.X)
		y, errY := b64.DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("jwk x and y must be 32 bytes each, base64url without padding")
		}
		pt := make([]byte, 0, 65)
		pt = append(append(append(pt, 4), x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
		if err != nil {
			return nil, errors.New("jwk is not a point on P-256")
		}
		return pub, nil
	case AlgEdDSA:
		if k.Kty != "OKP" || k.Crv != "Ed25519" {
			return nil, fmt.Errorf("alg %s needs a jwk of kty OKP and crv Ed25519, not kty %q crv %q", alg, k.Kty, k.Crv)
		}
		x, err := b64.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("jwk x must be 32 bytes, base64url without padding")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("alg %q is not supported", alg)
}

// publicJWK returns the canonical public JWK of pub (RFC 7638 section 3:
// required members only, in lexicographic order, no whitespace), which is
// both what a Signer embeds and what Thumbprint hashes.
func publicJWK(pub crypto.PublicKey) ([]byte, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("dpop: only P-256 ECDSA keys are supported")
		}
		pt, err := k.Bytes()
		if err != nil {
			return nil, fmt.Errorf("dpop: encode ECDSA key: %w", err)
		}
		return []byte(`{"crv":"P-256","kty":"EC","x":"` + b64.EncodeToString(pt[1:33]) +
			`","y":"` + b64.EncodeToString(pt[33:65]) + `"}`), nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("dpop: malformed Ed25519 public key")
		}
		return []byte(`{"crv":"Ed25519","kty":"OKP","x":"` + b64.EncodeToString(k) + `"}`), nil
	}
	return nil, fmt.Errorf("dpop: unsupported public key type %T; use ECDSA P-256 or Ed25519", pub)
}

// Thumbprint returns the RFC 7638 JWK SHA-256 thumbprint of pub, base64url
// without padding: the "jkt" that access tokens bound to the key carry in
// their "cnf" claim (RFC 9449 section 6). pub is an *ecdsa.PublicKey on
// P-256 or an ed25519.PublicKey.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	canon, err := publicJWK(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canon)
	return b64.EncodeToString(sum[:]), nil
}

// AccessTokenHash returns the "ath" of a proof sent with accessToken: the
// base64url SHA-256 of its ASCII bytes (RFC 9449 section 4.2).
func AccessTokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return b64.EncodeToString(sum[:])
}
