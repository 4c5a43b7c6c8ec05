package client_test

import (
	"bufio"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/dpop"
	"github.com/silentrefresh/silentrefresh/server"
)

// dpopLogin returns a Client with the DPoP key key (a new one when nil),
// logged in to rs as alice through r, on a MemoryStore.
func dpopLogin(t *testing.T, rs *realServer, r client.Refresher, key crypto.Signer, cfg client.Config) *client.Client {
	t.Helper()
	if key == nil {
		var err error
		if key, err = client.GenerateDPoPKey(); err != nil {
			t.Fatal(err)
		}
	}
	cfg.DPoP, cfg.Refresher, cfg.Now, cfg.Jitter = key, r, rs.clock.Now, -1
	if cfg.Store == nil {
		cfg.Store = client.NewMemoryStore(client.Tokens{})
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	tok, err := c.Login(bounded(t), "alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "DPoP" {
		t.Fatalf("login with a DPoP key got token type %q", tok.TokenType)
	}
	return c
}

// metric reads one sample of the server's /metrics.
func (rs *realServer) metric(t *testing.T, name string) string {
	t.Helper()
	resp, err := http.Get(rs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// Both refreshers log in with a proof, refresh with one and send every
// request with one: the session is bound to the key end to end.
func TestDPoPRealServer(t *testing.T) {
	for name, r := range map[string]func(url string) client.Refresher{
		"json api": func(url string) client.Refresher { return client.JSONAPI(url) },
		"oauth2":   func(url string) client.Refresher { return client.OAuth2(url+"/oauth2/token", "cli") },
	} {
		t.Run(name, func(t *testing.T) {
			rs := newRealServer(t, server.Config{AccessTTL: time.Minute})
			c := dpopLogin(t, rs, r(rs.URL), nil, client.Config{})
			before := c.Stats().Refreshes
			for i := range 3 {
				if status, body, err := get(bounded(t), c, rs.URL+"/api/me"); err != nil || status != 200 {
					t.Fatalf("request %d: %d %s %v", i, status, body, err)
				}
				rs.clock.Advance(time.Minute) // expired: the next request refreshes first
			}
			if got := c.Stats().Refreshes - before; got != 2 {
				t.Fatalf("%d refreshes, want 2", got)
			}
			tok, _ := c.Token(t.Context())
			if tok.TokenType != "DPoP" {
				t.Fatalf("refreshed token type %q", tok.TokenType)
			}
			if got := rs.metric(t, `silentrefresh_dpop_total{result="invalid"}`); got != "0" {
				t.Fatalf("%s proofs refused", got)
			}
		})
	}
}

// TestDPoPStolenRefreshToken: a refresh token copied out of a bound session
// and used with no proof, or with another key, inside or outside the grace
// window, is refused and revokes the session; the owner's next request
// ends with ErrReauthRequired.
func TestDPoPStolenRefreshToken(t *testing.T) {
	for _, tc := range []struct {
		name       string
		rotate     bool          // the owner refreshes after the copy, so the copy is consumed
		after      time.Duration // between the owner's refresh and the theft
		withKey    bool          // the thief proves a key of its own
		wantReason string
	}{
		{"current token, no proof", false, 0, false, "dpop_proof_missing"},
		{"current token, another key", false, 0, true, "dpop_key_mismatch"},
		{"inside grace, no proof", true, time.Second, false, "dpop_proof_missing"},
		{"inside grace, another key", true, time.Second, true, "dpop_key_mismatch"},
		{"outside grace, no proof", true, time.Minute, false, "dpop_proof_missing"},
		{"outside grace, another key", true, time.Minute, true, "dpop_key_mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := newRealServer(t, server.Config{AccessTTL: time.Hour, Grace: 10 * time.Second})
			ended := make(chan error, 1)
			owner := dpopLogin(t, rs, client.JSONAPI(rs.URL), nil, client.Config{OnReauthRequired: func(err error) { ended <- err }})
			stolen, _ := owner.Token(t.Context())
			if tc.rotate {
				if _, err := owner.Refresh(bounded(t)); err != nil {
					t.Fatal(err)
				}
				rs.clock.Advance(tc.after)
			}
			var err error
			if tc.withKey {
				thief := dpopLogin(t, rs, client.JSONAPI(rs.URL), nil, client.Config{})
				if err := thief.SetTokens(t.Context(), stolen); err != nil {
					t.Fatal(err)
				}
				_, err = thief.Refresh(bounded(t))
			} else {
				_, err = client.JSONAPI(rs.URL).Refresh(bounded(t), stolen.RefreshToken)
			}
			var re *client.RetrieveError
			if !errors.Is(err, client.ErrInvalidGrant) || !errors.As(err, &re) || re.ErrorDescription != tc.wantReason {
				t.Fatalf("thief's refresh: %v, want invalid_grant %s", err, tc.wantReason)
			}
			// The owner's access token is still unexpired, but the session
			// is over: its next request ends with the "log in again" answer.
			_, _, err = get(bounded(t), owner, rs.URL+"/api/me")
			if !errors.Is(err, client.ErrReauthRequired) {
				t.Fatalf("owner's next request: %v, want ErrReauthRequired", err)
			}
			select {
			case err := <-ended:
				if !errors.Is(err, client.ErrInvalidGrant) {
					t.Fatalf("OnReauthRequired with %v", err)
				}
			default:
				t.Fatal("OnReauthRequired was not called")
			}
			if got := rs.metric(t, `silentrefresh_refresh_total{outcome="`+tc.wantReason+`"}`); got != "1" {
				t.Fatalf("%s counted %q, want 1", tc.wantReason, got)
			}
		})
	}
}

// countingTransport counts the answers that ask for a DPoP nonce.
type countingTransport struct {
	base          http.RoundTripper
	nonceAsked    atomic.Int64
	requestsSent  atomic.Int64
	proofsWithout atomic.Int64 // requests with a DPoP header but no nonce in it
}

func (ct *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ct.requestsSent.Add(1)
	resp, err := ct.base.RoundTrip(r)
	if err == nil && (resp.StatusCode == 400 || resp.StatusCode == 401) && resp.Header.Get("DPoP-Nonce") != "" {
		ct.nonceAsked.Add(1)
	}
	return resp, err
}

// With server nonces, the Client retries once with the nonce it is sent,
// remembers it for the next requests, and retries again when it goes
// stale, at the token endpoint (400) and at a resource (401) alike.
func TestDPoPServerNonces(t *testing.T) {
	rs := newRealServer(t, server.Config{AccessTTL: time.Hour, DPoPNonce: true})
	ct := &countingTransport{base: http.DefaultTransport}
	c := dpopLogin(t, rs, client.JSONAPI(rs.URL, client.WithHTTPClient(&http.Client{Transport: ct})), nil, client.Config{Base: ct})
	if n := ct.nonceAsked.Load(); n != 1 {
		t.Fatalf("login: %d nonce requests, want 1 (the first proof has none)", n)
	}
	for i := range 3 {
		if status, body, err := get(bounded(t), c, rs.URL+"/api/me"); err != nil || status != 200 {
			t.Fatalf("request %d: %d %s %v", i, status, body, err)
		}
	}
	if n := ct.nonceAsked.Load(); n != 1 {
		t.Fatalf("%d nonce requests after 3 requests, want still 1: the nonce is remembered", n)
	}
	rs.clock.Advance(2 * dpop.DefaultNoncePeriod) // the nonce goes stale
	if status, body, err := get(bounded(t), c, rs.URL+"/api/me"); err != nil || status != 200 {
		t.Fatalf("request with a stale nonce: %d %s %v", status, body, err)
	}
	if n := ct.nonceAsked.Load(); n != 2 {
		t.Fatalf("%d nonce requests, want 2", n)
	}
	if _, err := c.Refresh(bounded(t)); err != nil {
		t.Fatalf("refresh with the remembered nonce: %v", err)
	}
	if n := ct.nonceAsked.Load(); n != 2 {
		t.Fatalf("%d nonce requests after a refresh, want 2", n)
	}
}

// TestDPoPKeyFile: a FileStore keeps its DPoP key beside the tokens, mode
// 0600, and hands out the same key every time.
func TestDPoPKeyFile(t *testing.T) {
	fs := client.NewFileStore(filepath.Join(t.TempDir(), "tokens.json"))
	a, err := fs.DPoPKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.NewFileStore(fs.Path()).DPoPKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ta, _ := dpop.Thumbprint(a.Public())
	tb, _ := dpop.Thumbprint(b.Public())
	if ta != tb {
		t.Fatal("two FileStores on one file have different DPoP keys")
	}
	fi, err := os.Stat(fs.DPoPKeyPath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", fi.Mode(), err)
	}
	if err := os.WriteFile(fs.DPoPKeyPath(), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.DPoPKey(t.Context()); err == nil {
		t.Fatal("a corrupt key file was accepted")
	}
}

// TestDPoPHelperProcess is the second process of TestDPoPTwoProcessesOneFile.
func TestDPoPHelperProcess(t *testing.T) {
	path, url := os.Getenv("CLIENT_DPOP_HELPER_FILE"), os.Getenv("CLIENT_DPOP_HELPER_URL")
	if path == "" {
		t.Skip("run by TestDPoPTwoProcessesOneFile")
	}
	fail := func(err error) {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fs := client.NewFileStore(path)
	key, err := fs.DPoPKey(context.Background())
	if err != nil {
		fail(err)
	}
	c, err := client.New(client.Config{Refresher: client.JSONAPI(url), Store: fs, DPoP: key})
	if err != nil {
		fail(err)
	}
	jkt, _ := dpop.Thumbprint(key.Public())
	fmt.Println("ready", jkt)
	in := bufio.NewScanner(os.Stdin)
	in.Scan() // "go"
	status, _, err := get(context.Background(), c, url+"/api/me")
	s := c.Stats()
	fmt.Printf("status %d err %v refreshes %d adoptions %d\n", status, err, s.Refreshes, s.Adoptions)
	os.Exit(0)
}

// TestDPoPTwoProcessesOneFile: two OS processes share a token file and its
// DPoP key; both find the token expired and refresh at once, against a
// server with no grace window. One refreshes, the other adopts, both
// requests go out with proofs of the one key: no reuse, no failure.
func TestDPoPTwoProcessesOneFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	rs := newRealServer(t, server.Config{AccessTTL: time.Hour, Grace: -1})
	path := filepath.Join(t.TempDir(), "tokens.json")
	fs := client.NewFileStore(path)
	key, err := fs.DPoPKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	jkt, _ := dpop.Thumbprint(key.Public())
	for round := range 2 {
		login := dpopLogin(t, rs, client.JSONAPI(rs.URL), key, client.Config{Store: client.NewFileStore(path)})
		tok, _ := login.Token(t.Context())
		tok.Expiry = time.Now().Add(-time.Second) // both processes must refresh first
		if err := fs.Save(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		rotated := rs.metric(t, `silentrefresh_refresh_total{outcome="rotated"}`)

		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestDPoPHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CLIENT_DPOP_HELPER_FILE="+path, "CLIENT_DPOP_HELPER_URL="+rs.URL)
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		out := bufio.NewScanner(stdout)
		if !out.Scan() || out.Text() != "ready "+jkt {
			t.Fatalf("helper: %q, want ready with the key %s", out.Text(), jkt)
		}
		c, err := client.New(client.Config{Refresher: client.JSONAPI(rs.URL), Store: client.NewFileStore(path), DPoP: key})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(stdin, "go\n")
		status, _, err := get(bounded(t), c, rs.URL+"/api/me")
		if err != nil || status != http.StatusOK {
			t.Errorf("round %d: this process: %d %v", round, status, err)
		}
		if !out.Scan() {
			t.Fatalf("round %d: helper said nothing", round)
		}
		line := out.Text()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
		if !strings.HasPrefix(line, "status 200 err <nil>") {
			t.Errorf("round %d: helper process: %s", round, line)
		}
		var before, after int
		fmt.Sscan(rotated, &before)
		fmt.Sscan(rs.metric(t, `silentrefresh_refresh_total{outcome="rotated"}`), &after)
		if after-before != 1 {
			t.Errorf("round %d: %d rotations, want 1", round, after-before)
		}
		for _, bad := range []string{`silentrefresh_refresh_total{outcome="reused"}`, `silentrefresh_refresh_total{outcome="dpop_key_mismatch"}`,
			`silentrefresh_refresh_total{outcome="dpop_proof_missing"}`, `silentrefresh_dpop_total{result="invalid"}`} {
			if got := rs.metric(t, bad); got != "0" {
				t.Errorf("round %d: %s = %s", round, bad, got)
			}
		}
		t.Logf("round %d: this process %+v; helper: %s", round, c.Stats(), line)
		c.Close()
	}
}
