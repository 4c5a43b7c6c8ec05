// Package assertion validates JWT bearer assertions (RFC 7523 section 2.1):
// short JWTs that an application's own backend signs after its own sign-in,
// which the server exchanges for a session.
//
// An operator trusts an issuer by name with its keys: a JWK set (a file or
// an https URL, RSA, EC and Ed25519 keys, each pinned to one algorithm) or,
// for small setups, an HS256 secret. A Validator applies every rule of RFC
// 7523 section 3 and refuses an assertion with an *Error that names the
// rule; each jti is accepted once, through a ReplayStore that every replica
// shares.
package assertion
