// Package token signs and verifies access tokens and makes refresh tokens.
//
// Access tokens are JWTs in the RFC 9068 profile (header typ "at+jwt"),
// signed with Ed25519 ("EdDSA", RFC 8037). Signing keys live in a KeyStore
// that every replica of the server shares; an Issuer mints tokens with the
// newest key, a Verifier checks them against a KeySet: NewStoreKeySet for
// the server itself, NewRemoteKeySet for resource servers that only see the
// JWKS document (see JWKS).
//
// Refresh tokens are opaque to clients: an issue-time prefix and 32 secret
// bytes (refreshtoken.go). Only their hash (HashRefreshToken) is ever
// stored; SuccessorToken derives the token that replaces one on rotation,
// and ReplaySuccessor derives it again from its stored hash, so that a
// repeated exchange within the grace window can answer the very same
// successor without keeping plaintext.
package token
