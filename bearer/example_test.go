package bearer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/silentrefresh/silentrefresh/bearer"
	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// A resource server that shares nothing with the silentrefresh server but
// its URL: it verifies access tokens against the published JWKS.
func Example() {
	issuerURL, accessToken, stop := startIssuer()
	defer stop()

	ctx := context.Background()
	keys := token.NewRemoteKeySet(ctx, issuerURL+"/.well-known/jwks.json", nil)
	v, err := token.NewVerifier(keys, token.VerifierConfig{
		Issuer:   issuerURL,
		Audience: issuerURL,
		Leeway:   5 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/orders", bearer.Require(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := bearer.ClaimsFrom(r.Context())
		fmt.Fprintf(w, "orders of %s", claims.Subject)
	})))
	api := httptest.NewServer(mux)
	defer api.Close()

	for _, auth := range []string{"Bearer " + accessToken, ""} {
		req, _ := http.NewRequest("GET", api.URL+"/api/orders", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			fmt.Println(res.StatusCode, string(body))
		} else {
			fmt.Println(res.StatusCode, res.Header.Get("WWW-Authenticate"))
		}
	}
	// Output:
	// 200 orders of sub-alice
	// 401 Bearer error="invalid_token", error_description="no bearer token"
}

// startIssuer runs a silentrefresh server over a temporary SQLite file
// with one user, logs the user in and returns the server's URL and the
// access token.
func startIssuer() (url, accessToken string, stop func()) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bearer-example")
	if err != nil {
		log.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "auth.db"))
	if err != nil {
		log.Fatal(err)
	}
	hash, err := user.HashPasswordParams("secret", user.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	if err != nil {
		log.Fatal(err)
	}
	if err := st.CreateUser(ctx, user.User{ID: "sub-alice", Username: "alice", PasswordHash: hash, CreatedAt: time.Now()}); err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nil)
	url = "http://" + hs.Listener.Addr().String()
	srv, err := server.New(ctx, server.Config{Store: st, Issuer: url})
	if err != nil {
		log.Fatal(err)
	}
	hs.Config.Handler = srv
	hs.Start()
	res, err := http.Post(url+"/api/auth/login", "application/json", bytes.NewReader([]byte(`{"username":"alice","password":"secret"}`)))
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	var reply struct{ AccessToken string }
	if err := json.NewDecoder(res.Body).Decode(&reply); err != nil || reply.AccessToken == "" {
		log.Fatalf("login: %d %v", res.StatusCode, err)
	}
	return url, reply.AccessToken, func() {
		hs.Close()
		st.Close()
		os.RemoveAll(dir)
	}
}
