// Package dpop implements OAuth 2.0 Demonstrating Proof of Possession
// (RFC 9449): proofs that a request was sent by the holder of a private
// key, so that tokens bound to that key are useless to whoever steals them.
//
// A client signs a fresh proof for every request with a [Signer] (ECDSA
// P-256 "ES256" or Ed25519 "EdDSA" keys, see [GenerateKey]) and sends it in
// the DPoP header. A server checks it with a [Verifier], which applies every
// rule of RFC 9449 section 4.3: one well-formed JWT, typ "dpop+jwt", an
// accepted asymmetric algorithm pinned to the embedded key's type, a valid
// signature with that public key and no private key material, htm and htu
// matching the request, iat inside a short window, a jti not seen before
// inside that window ([ReplayCache]), ath matching the access token on
// resource requests, and, when the server asks for them, a nonce it issued
// ([Nonces], section 8). [Thumbprint] is the RFC 7638 "jkt" that binds
// tokens to the key.
//
// [Verifier.Verify] does it all at once. A server whose requests carry a
// credential besides the proof (a password, a refresh token, an access
// token) calls [Verifier.Check] first, checks the credential, and only
// then [Verifier.Record]s the jti, so that requests without a valid
// credential cannot fill the replay cache.
//
// The package depends on the standard library and golang-jwt only, so
// resource servers can import it without the rest of silentrefresh.
package dpop
