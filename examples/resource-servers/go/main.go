// Command resource-server is an API that accepts silentrefresh access
// tokens, written with package bearer: it verifies each token against the
// issuer's JWKS (signature, iss, aud, exp, typ at+jwt) and checks the roles
// claim for its admin route.
//
//	ISSUER=http://localhost:8080 go run ./examples/resource-servers/go
//
// Environment: ISSUER (required), AUDIENCE (default ISSUER), JWKS_URL
// (default ISSUER/.well-known/jwks.json), PORT (default 0: any free port),
// REQUIRED_ROLE (default admin). It prints "listening on URL" when ready.
//
//	GET /api/hello   any valid token: 200 {"sub","roles"}
//	GET /api/admin   a valid token whose roles hold REQUIRED_ROLE: 200, else 403
//
// A missing, expired, forged or foreign token is 401 with
// WWW-Authenticate: Bearer error="invalid_token".
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/silentrefresh/silentrefresh/bearer"
	"github.com/silentrefresh/silentrefresh/token"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		log.Fatal(err)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context) error {
	issuer := os.Getenv("ISSUER")
	if issuer == "" {
		return fmt.Errorf("ISSUER is required: the base URL of the silentrefresh server")
	}
	audience := env("AUDIENCE", issuer)
	role := env("REQUIRED_ROLE", "admin")
	keys := token.NewRemoteKeySet(ctx, env("JWKS_URL", issuer+"/.well-known/jwks.json"), nil)
	// The verifier pins EdDSA and requires typ at+jwt, iss, aud and exp.
	v, err := token.NewVerifier(keys, token.VerifierConfig{Issuer: issuer, Audience: audience, Leeway: 5 * time.Second})
	if err != nil {
		return err
	}
	requireToken := bearer.Require(v)

	mux := http.NewServeMux()
	mux.Handle("GET /api/hello", requireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := bearer.ClaimsFrom(r.Context())
		reply(w, http.StatusOK, map[string]any{"sub": c.Subject, "roles": roles(c)})
	})))
	mux.Handle("GET /api/admin", requireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := bearer.ClaimsFrom(r.Context())
		if !slices.Contains(roles(c), role) {
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
			reply(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope", "error_description": "the roles claim lacks " + role})
			return
		}
		reply(w, http.StatusOK, map[string]any{"sub": c.Subject, "role": role})
	})))

	ln, err := net.Listen("tcp", "127.0.0.1:"+env("PORT", "0"))
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		hs.Shutdown(context.Background())
	}()
	fmt.Printf("listening on http://%s\n", ln.Addr())
	if err := hs.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// roles is the "roles" claim (RFC 9068 section 2.2.3.1) as a list: an
// array of strings, or a single string.
func roles(c token.Claims) []string {
	switch r := c.Extra["roles"].(type) {
	case string:
		return []string{r}
	case []any:
		var out []string
		for _, v := range r {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
