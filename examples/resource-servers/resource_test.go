// Package resourceservers holds example APIs in Go, Node and Python that
// accept silentrefresh access tokens. This test runs each as a real process
// against a real "silentrefresh serve".
package resourceservers

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/silentrefresh/silentrefresh/store/memstore"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/token"
)

// python is Debian's interpreter, which has python3-jwt and
// python3-cryptography; the python3 first on PATH may be another.
const python = "/usr/bin/python3"

// process starts a command and returns the URL it prints as "listening on
// URL". It is stopped with SIGTERM when the test ends.
func process(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = &prefixWriter{t: t, prefix: filepath.Base(name) + ": "}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				found <- u
				break
			}
		}
		io.Copy(io.Discard, out)
		close(found)
	}()
	select {
	case u, ok := <-found:
		if !ok {
			t.Fatalf("%s %q exited without listening", name, args)
		}
		return u
	case <-time.After(60 * time.Second):
		t.Fatalf("%s %q did not start listening within 60s", name, args)
	}
	return ""
}

type prefixWriter struct {
	t      *testing.T
	prefix string
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s%s", w.prefix, strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func run(t *testing.T, dir, stdin, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func login(t *testing.T, issuer, username, password string) string {
	t.Helper()
	res, err := http.Post(issuer+"/api/auth/login", "application/json",
		strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, username, password)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r struct{ AccessToken string }
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil || res.StatusCode != 200 {
		t.Fatalf("login %s: %d %v", username, res.StatusCode, err)
	}
	return r.AccessToken
}

func get(t *testing.T, url, tok string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode == 401 && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("GET %s: 401 without a Bearer challenge", url)
	}
	return res.StatusCode
}

func TestResourceServers(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "silentrefresh")
	run(t, root, "", "go", "build", "-o", bin, "./cmd/silentrefresh")
	goAPI := filepath.Join(tmp, "go-api")
	run(t, root, "", "go", "build", "-o", goAPI, "./examples/resource-servers/go")

	db := filepath.Join(tmp, "sr.db")
	dsn := "sqlite:" + db
	run(t, tmp, "alice-password\n", bin, "user", "add", "--db", dsn, "--username", "alice", "--password-stdin")
	run(t, tmp, "bob-password\n", bin, "user", "add", "--db", dsn, "--username", "bob", "--password-stdin")
	run(t, tmp, "", bin, "user", "claims", "alice", "--db", dsn, "--set", "roles=admin,editor")

	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	process(t, tmp, nil, bin, "serve", "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--issuer", issuer, "--db", dsn)

	admin, plain := login(t, issuer, "alice", "alice-password"), login(t, issuer, "bob", "bob-password")
	bad := craftTokens(t, db, issuer)

	env := []string{"ISSUER=" + issuer, "JWKS_URL=" + issuer + "/.well-known/jwks.json", "REQUIRED_ROLE=admin"}
	nodeDir := filepath.Join(tmp, "node")
	for _, f := range []string{"package.json", "package-lock.json", "server.mjs"} {
		b, err := os.ReadFile(filepath.Join("node", f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(nodeDir, 0o755)
		os.WriteFile(filepath.Join(nodeDir, f), b, 0o644)
	}
	pyDir, _ := filepath.Abs("python")
	for _, ex := range []struct {
		name  string
		start func(t *testing.T) string
	}{
		{"go", func(t *testing.T) string { return process(t, tmp, env, goAPI) }},
		{"node", func(t *testing.T) string {
			run(t, nodeDir, "", "npm", "ci", "--no-audit", "--no-fund")
			return process(t, nodeDir, env, "node", "server.mjs")
		}},
		{"python", func(t *testing.T) string { return process(t, pyDir, env, python, "server.py") }},
	} {
		t.Run(ex.name, func(t *testing.T) {
			api := ex.start(t)
			for _, c := range []struct {
				what, path, tok string
				want            int
			}{
				{"valid token", "/api/hello", plain, 200},
				{"valid token with the role", "/api/admin", admin, 200},
				{"valid token without the role", "/api/admin", plain, 403},
				{"no token", "/api/hello", "", 401},
				{"expired", "/api/hello", bad.expired, 401},
				{"forged", "/api/hello", bad.forged, 401},
				{"wrong audience", "/api/hello", bad.wrongAudience, 401},
				{"wrong issuer", "/api/hello", bad.wrongIssuer, 401},
				{"typ JWT, not at+jwt", "/api/hello", bad.wrongType, 401},
				{"garbage", "/api/hello", "a.b.c", 401},
			} {
				if got := get(t, api+c.path, c.tok); got != c.want {
					t.Errorf("%s: GET %s = %d, want %d", c.what, c.path, got, c.want)
				}
			}
		})
	}
}

// badTokens are access tokens a resource server must refuse.
type badTokens struct {
	expired, forged, wrongAudience, wrongIssuer, wrongType string
}

// craftTokens signs the hostile tokens: with the server's real key (read
// from its database) but expired, for another audience or issuer, or typed
// as a plain JWT; and with a key of the attacker's that claims the real
// key's kid.
func craftTokens(t *testing.T, db, issuer string) badTokens {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys, err := st.SigningKeys(ctx)
	if err != nil || len(keys) == 0 {
		t.Fatalf("signing keys: %v", err)
	}
	real := keys[0]
	now := time.Now()
	good := token.Claims{Subject: "sub-x", IssuedAt: now, ExpiresAt: now.Add(10 * time.Minute), ClientID: "public", SessionID: "s",
		Extra: map[string]any{"roles": []any{"admin"}}}
	mint := func(ks token.KeyStore, c token.Claims, aud string) string {
		t.Helper()
		tok, err := token.NewIssuer(ks, issuer, []string{aud}).Mint(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	var b badTokens
	expired := good
	expired.IssuedAt, expired.ExpiresAt = now.Add(-2*time.Hour), now.Add(-time.Hour)
	b.expired = mint(st, expired, issuer)
	b.wrongAudience = mint(st, good, "https://another-api.example")
	other := good
	other.Issuer = "https://evil.example"
	b.wrongIssuer = mint(st, other, issuer)

	_, attacker, _ := ed25519.GenerateKey(rand.Reader)
	fake := memstore.New()
	if err := fake.AddSigningKey(ctx, token.Key{ID: real.ID, Algorithm: token.AlgEdDSA, PrivateKey: attacker, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	b.forged = mint(fake, good, issuer)

	jt := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": issuer, "sub": "sub-x", "aud": issuer,
		"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "roles": []string{"admin"}, "jti": "t"})
	jt.Header["kid"], jt.Header["typ"] = real.ID, "JWT"
	if b.wrongType, err = jt.SignedString(real.PrivateKey); err != nil {
		t.Fatal(err)
	}
	return b
}
