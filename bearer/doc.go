// Package bearer lets a Go service accept silentrefresh access tokens: it
// parses the "Authorization: Bearer" header (RFC 6750), verifies the token
// with a token.Verifier and puts its claims in the request context.
//
// It depends on the token package and the standard library only, so a
// resource server that mounts Require pulls in no database driver and no
// metrics library. A resource server that shares no store with the issuer
// verifies against the issuer's published keys:
//
//	keys := token.NewRemoteKeySet(ctx, "https://auth.example.com/.well-known/jwks.json", nil)
//	v, err := token.NewVerifier(keys, token.VerifierConfig{
//		Issuer:   "https://auth.example.com",
//		Audience: "https://auth.example.com",
//		Leeway:   5 * time.Second,
//	})
//	...
//	mux.Handle("/api/orders", bearer.Require(v)(orders))
//
// Such a verifier is stateless: a revoked session's access tokens are
// accepted until they expire. WithSessionCheck adds a per-request check of
// the session, for endpoints that must see a logout at once.
//
// WithDPoP accepts DPoP-bound tokens (RFC 9449): "Authorization: DPoP
// <token>" with a proof of the key the token's cnf.jkt names. A bound token
// sent as Bearer is refused whatever the options, and refusals under the
// DPoP scheme get a DPoP challenge (section 7.1):
//
//	dv, err := dpop.NewVerifier(dpop.Config{})
//	...
//	mux.Handle("/api/orders", bearer.Require(v, bearer.WithDPoP(dv, "https://api.example.com"))(orders))
package bearer
