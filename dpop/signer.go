package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"
)

// GenerateKey returns a new private key for alg: an *ecdsa.PrivateKey on
// P-256 for AlgES256, an ed25519.PrivateKey for AlgEdDSA. Both are
// crypto.Signers that NewSigner accepts.
func GenerateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case AlgES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("dpop: generate P-256 key: %w", err)
		}
		return k, nil
	case AlgEdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("dpop: generate Ed25519 key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("dpop: algorithm %q is not supported; use %s or %s", alg, AlgES256, AlgEdDSA)
}

// Signer signs DPoP proofs with one private key. It is safe for concurrent
// use (as far as its crypto.Signer is). Create one with NewSigner; the zero
// value is not usable.
type Signer struct {
	key    crypto.Signer
	alg    string
	jkt    string
	prefix string // base64url of the header JSON, followed by "."
}

// NewSigner returns a Signer for key, whose public key must be ECDSA P-256
// (proofs are signed ES256) or Ed25519 (EdDSA). key may be any
// crypto.Signer, such as one backed by a hardware token.
func NewSigner(key crypto.Signer) (*Signer, error) {
	if key == nil {
		return nil, errors.New("dpop: NewSigner needs a key")
	}
	pub := key.Public()
	var alg string
	switch pub.(type) {
	case *ecdsa.PublicKey:
		alg = AlgES256
	case ed25519.PublicKey:
		alg = AlgEdDSA
	}
	jwk, err := publicJWK(pub)
	if err != nil {
		return nil, err
	}
	jkt, err := Thumbprint(pub)
	if err != nil {
		return nil, err
	}
	h, err := json.Marshal(struct {
		Typ string          `json:"typ"`
		Alg string          `json:"alg"`
		JWK json.RawMessage `json:"jwk"`
	}{TypeProof, alg, jwk})
	if err != nil {
		return nil, fmt.Errorf("dpop: encode header: %w", err)
	}
	return &Signer{key: key, alg: alg, jkt: jkt, prefix: b64.EncodeToString(h) + "."}, nil
}

// Algorithm returns the JWS algorithm of the Signer's proofs.
func (s *Signer) Algorithm() string { return s.alg }

// Thumbprint returns the RFC 7638 thumbprint (jkt) of the Signer's key.
func (s *Signer) Thumbprint() string { return s.jkt }

// Key returns the Signer's private key.
func (s *Signer) Key() crypto.Signer { return s.key }

// Proof returns a new proof for a request with the given method to htu
// (see HTU: no query or fragment), issued at iat, with a random jti. ath
// (see AccessTokenHash) and nonce are included when not empty.
func (s *Signer) Proof(method, htu, ath, nonce string, iat time.Time) (string, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("dpop: jti: %w", err)
	}
	// The claims are built by hand: they are few, and this runs on every
	// request; strings that need escaping go through encoding/json.
	body := make([]byte, 0, 160+len(htu)+len(nonce))
	body = append(body, `{"jti":"`...)
	body = b64.AppendEncode(body, id[:])
	body = append(body, `","htm":`...)
	body = appendJSONString(body, method)
	body = append(body, `,"htu":`...)
	body = appendJSONString(body, htu)
	body = append(body, `,"iat":`...)
	body = strconv.AppendInt(body, iat.Unix(), 10)
	if ath != "" {
		body = append(body, `,"ath":`...)
		body = appendJSONString(body, ath)
	}
	if nonce != "" {
		body = append(body, `,"nonce":`...)
		body = appendJSONString(body, nonce)
	}
	body = append(body, '}')

	buf := make([]byte, 0, len(s.prefix)+b64.EncodedLen(len(body))+1+b64.EncodedLen(64))
	buf = append(buf, s.prefix...)
	buf = b64.AppendEncode(buf, body)
	sig, err := s.sign(buf)
	if err != nil {
		return "", err
	}
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, sig)
	return string(buf), nil
}

// sign returns the JWS signature of the signing input in.
func (s *Signer) sign(in []byte) ([]byte, error) {
	if s.alg == AlgEdDSA {
		sig, err := s.key.Sign(rand.Reader, in, crypto.Hash(0))
		if err != nil {
			return nil, fmt.Errorf("dpop: sign: %w", err)
		}
		return sig, nil
	}
	sum := sha256.Sum256(in)
	if k, ok := s.key.(*ecdsa.PrivateKey); ok {
		r, ss, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			return nil, fmt.Errorf("dpop: sign: %w", err)
		}
		return rawECDSA(r, ss), nil
	}
	der, err := s.key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("dpop: sign: %w", err)
	}
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) > 0 {
		return nil, errors.New("dpop: sign: the key's signature is not ASN.1 ECDSA")
	}
	return rawECDSA(rs.R, rs.S), nil
}

// rawECDSA is the JWS form of an ECDSA P-256 signature: r and s, 32 bytes
// each (RFC 7518 section 3.4).
func rawECDSA(r, s *big.Int) []byte {
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
