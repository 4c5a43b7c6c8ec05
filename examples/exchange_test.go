package examples

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/silentrefresh/silentrefresh/assertion"
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
