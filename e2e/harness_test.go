// Package e2e runs the real silentrefresh binary as separate processes —
// several replicas on one PostgreSQL, or one server on a SQLite file — and
// drives them over HTTP with clients that spread their requests over random
// replicas, killing replicas and the database on the way.
//
// Run with a test PostgreSQL:
//
//	eval "$(scripts/postgres.sh start)"
//	go test ./e2e/
//
// SILENTREFRESH_E2E_DURATION sets how long the steady-load test runs
// (default 30s, 8s with -short).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/internal/clock"
)

// bin is the silentrefresh binary built by TestMain, root the module's
// folder.
var bin, root string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "silentrefresh-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err = moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bin = filepath.Join(dir, "silentrefresh")
	build := exec.Command("go", "build", "-o", bin, "./cmd/silentrefresh")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/silentrefresh: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("e2e: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("e2e: not inside the module")
	}
	return filepath.Dir(gomod), nil
}

// loadDuration is how long the steady-load test runs.
func loadDuration(t *testing.T) time.Duration {
	if v := os.Getenv("SILENTREFRESH_E2E_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SILENTREFRESH_E2E_DURATION: %v", err)
		}
		return d
	}
	if testing.Short() {
		return 8 * time.Second
	}
	return 30 * time.Second
}

// childEnv is the environment of child processes: ours without
// SILENTREFRESH_* flag variables, which would override the flags we pass.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SILENTREFRESH_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// addUser creates a user with the CLI.
func addUser(t *testing.T, db, name, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "user", "add", "--db", db, "--username", name, "--password-stdin")
	cmd.Env = childEnv()
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("user add %s: %v\n%s", name, err, out)
	}
}

// server is one "silentrefresh serve" process.
type server struct {
	args []string
	addr string // host:port, kept across restarts
	url  string
	log  string // file with the process's stderr
	// adminURL is the admin listener's, with --admin-addr.
	adminURL string

	mu  sync.Mutex // guards cmd
	cmd *exec.Cmd
}

// startServers runs n "silentrefresh serve" processes at once with the
// database and extra flags and waits until they all listen. They are killed
// when the test ends.
func startServers(t *testing.T, n int, db string, extra ...string) []*server {
	t.Helper()
	servers := make([]*server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range servers {
		name := fmt.Sprintf("replica%d", i)
		s := &server{
			// One public issuer for all, as behind a load balancer:
			// each replica accepts the others' access tokens.
			args: append([]string{"serve", "--db", db, "--log-level", "warn", "--issuer", "http://silentrefresh.e2e.test"}, extra...),
			addr: "127.0.0.1:0",
			log:  filepath.Join(t.TempDir(), name+".log"),
		}
		servers[i] = s
		t.Cleanup(func() {
			s.kill()
			if t.Failed() {
				b, _ := os.ReadFile(s.log)
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("%s log (tail):\n%s", name, b)
			}
		})
		wg.Go(func() { errs[i] = s.start() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return servers
}

// start starts the process on s.addr and waits for "listening on".
func (s *server) start() error {
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, append(s.args, "--addr", s.addr)...)
	cmd.Env = childEnv()
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	listening := make(chan string, 1)
	var adminURL string // written before listening is sent
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "admin listening on "); ok {
				adminURL = strings.TrimSpace(u)
			} else if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				listening <- u
			}
		}
		close(listening)
	}()
	select {
	case u, ok := <-listening:
		if !ok {
			b, _ := os.ReadFile(s.log)
			return fmt.Errorf("server exited before listening:\n%s", b)
		}
		s.url = strings.TrimSpace(u)
		s.addr = strings.TrimPrefix(s.url, "http://")
		s.adminURL = adminURL
		return nil
	case <-time.After(60 * time.Second):
		s.kill()
		b, _ := os.ReadFile(s.log)
		return fmt.Errorf("server did not listen within 60s:\n%s", b)
	}
}

// kill sends SIGKILL (kill -9) and reaps the process.
func (s *server) kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// restart starts the server again on the same address.
func (s *server) restart() error {
	s.kill()
	return s.start()
}

// ---- HTTP API, raw ----

// tokens are what a login or refresh answers.
type tokens struct {
	Access  string
	Refresh string
	Expiry  time.Time // of the access token, from its "exp" claim
	SID     string    // the session (family) ID, from the "sid" claim
}

// apiError is a non-2xx answer.
type apiError struct {
	Status     int
	Code       string `json:"error"`
	Desc       string `json:"error_description"`
	RetryAfter string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Desc)
}

// newHTTPClient returns a client with enough idle connections for the load.
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConns:        512,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

// postJSON posts body and decodes a 200 answer into out; other statuses
// return *apiError, transport failures their error.
func postJSON(ctx context.Context, hc *http.Client, url string, body, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return do(hc, req, out)
}

// get sends a GET with the access token.
func get(ctx context.Context, hc *http.Client, url, access string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if access != "" {
		req.Header.Set("Authorization", "Bearer "+access)
	}
	return do(hc, req, out)
}

func do(hc *http.Client, req *http.Request, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}
		if err := json.Unmarshal(b, e); err != nil {
			e.Desc = fmt.Sprintf("non-JSON body %q", b)
		}
		return e
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

// grantReply is the JSON API's answer to login and refresh.
type grantReply struct {
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
	ExpiresIn    int64  `json:"expiresIn"`
}

func (g grantReply) tokens() (tokens, error) {
	parts := strings.Split(g.AccessToken, ".")
	if len(parts) != 3 || g.RefreshToken == "" {
		return tokens{}, fmt.Errorf("malformed grant")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return tokens{}, fmt.Errorf("access token payload: %w", err)
	}
	var c struct {
		Exp int64  `json:"exp"`
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return tokens{}, fmt.Errorf("access token claims: %w", err)
	}
	return tokens{Access: g.AccessToken, Refresh: g.RefreshToken, Expiry: time.Unix(c.Exp, 0), SID: c.SID}, nil
}

// login logs in, honouring the server's 503 and Retry-After when it has
// more logins in flight than password hashes it allows at once, as every
// well-behaved client does.
func login(ctx context.Context, hc *http.Client, base, username, password string) (tokens, error) {
	for attempt := 1; ; attempt++ {
		var g grantReply
		err := postJSON(ctx, hc, base+"/api/auth/login", map[string]string{"username": username, "password": password}, &g)
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable && attempt < 20 {
			if clock.Sleep(ctx, 200*time.Millisecond) != nil {
				return tokens{}, err
			}
			continue
		}
		if err != nil {
			return tokens{}, err
		}
		return g.tokens()
	}
}

func refresh(ctx context.Context, hc *http.Client, base, refreshToken string) (tokens, error) {
	var g grantReply
	if err := postJSON(ctx, hc, base+"/api/auth/refresh", map[string]string{"refreshToken": refreshToken}, &g); err != nil {
		return tokens{}, err
	}
	return g.tokens()
}
