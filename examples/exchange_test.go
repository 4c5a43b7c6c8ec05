package examples

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/silentrefresh/silentrefresh/assertion"
	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
)

// TestBrowserClientExchange runs the browser client in Node against a real
// server that trusts an HS256 issuer: api.exchange(assertion) begins a
// session whose tokens work and rotate, and the same assertion is refused
// the second time.
func TestBrowserClientExchange(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	secret := []byte(rand.Text() + rand.Text())
	keyFile := filepath.Join(dir, "assertion.key")
	if err := os.WriteFile(keyFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	iss, err := assertion.ParseIssuer("myapp=hs256:" + keyFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "sr.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hs := httptest.NewUnstartedServer(nil)
	srv, err := server.New(ctx, server.Config{Store: st, Issuer: "http://" + hs.Listener.Addr().String(), TrustedIssuers: []assertion.Issuer{iss}})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv
	hs.Start()
	defer hs.Close()

	raw, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "myapp", "sub": "user-42", "aud": hs.URL,
		"exp": time.Now().Add(2 * time.Minute).Unix(), "jti": rand.Text()}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join("testdata", "exchange.mjs"), hs.URL, raw)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var got struct {
		Exchanged, Rotated bool
		Me                 struct {
			Status int
			Sub    string
		}
		Replay string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if !got.Exchanged || !got.Rotated || got.Me.Status != 200 || got.Me.Sub != "myapp|user-42" || got.Replay != "invalid_grant 401" {
		t.Fatalf("browser client against the real server: %+v", got)
	}
}

// TestGoClientFromExchange: the Go client starts from the tokens of an
// exchange and keeps them fresh.
func TestGoClientFromExchange(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	secret := []byte(rand.Text() + rand.Text())
	keyFile := filepath.Join(dir, "assertion.key")
	os.WriteFile(keyFile, secret, 0o600)
	iss, err := assertion.ParseIssuer("myapp=hs256:" + keyFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "sr.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hs := httptest.NewUnstartedServer(nil)
	srv, err := server.New(ctx, server.Config{Store: st, Issuer: "http://" + hs.Listener.Addr().String(), TrustedIssuers: []assertion.Issuer{iss}})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv
	hs.Start()
	defer hs.Close()
	raw, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "myapp", "sub": "svc-7", "aud": hs.URL,
		"exp": time.Now().Add(2 * time.Minute).Unix(), "jti": rand.Text()}).SignedString(secret)
	res, err := http.PostForm(hs.URL+"/oauth2/token", url.Values{"grant_type": {server.GrantTypeJWTBearer}, "assertion": {raw}})
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	json.NewDecoder(res.Body).Decode(&g)
	res.Body.Close()
	if res.StatusCode != 200 || g.RefreshToken == "" {
		t.Fatalf("exchange: %d", res.StatusCode)
	}
	// The access token is taken as already stale, so the first request
	// refreshes before it goes out.
	store := client.NewMemoryStore(client.Tokens{AccessToken: g.AccessToken, RefreshToken: g.RefreshToken, Expiry: time.Now().Add(-time.Second)})
	c, err := client.New(client.Config{Refresher: client.OAuth2(hs.URL+"/oauth2/token", ""), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	me, err := c.HTTPClient().Get(hs.URL + "/api/me")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Sub string }
	json.NewDecoder(me.Body).Decode(&body)
	me.Body.Close()
	now, _ := store.Load(ctx)
	if me.StatusCode != 200 || body.Sub != "myapp|svc-7" || now.RefreshToken == g.RefreshToken {
		t.Fatalf("GET /api/me: %d %q; refresh token rotated: %v", me.StatusCode, body.Sub, now.RefreshToken != g.RefreshToken)
	}
}
