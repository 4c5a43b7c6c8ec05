package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/user"
)

// loginFrom logs in as username with password, through a trusted proxy
// that says the client is at addr (when addr is not empty).
func (e *env) loginFrom(addr, username, password string) response {
	e.t.Helper()
	var hdr []string
	if addr != "" {
		hdr = []string{"X-Forwarded-For", addr}
	}
	return e.postJSON("/api/auth/login", map[string]string{"username": username, "password": password}, hdr...)
}

// concurrentLogins sends n logins at once and returns their statuses.
func (e *env) concurrentLogins(n int, username, password string) map[int]int {
	e.t.Helper()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		start    = make(chan struct{})
		statuses = map[int]int{}
	)
	body, _ := json.Marshal(map[string]string{"username": username, "password": password})
	for range n {
		wg.Go(func() {
			<-start
			res, err := http.Post(e.http.URL+"/api/auth/login", "application/json", bytes.NewReader(body))
			if err != nil {
				e.t.Error(err)
				return
			}
			res.Body.Close()
			mu.Lock()
			statuses[res.StatusCode]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return statuses
}

// TestConcurrentGuessesCannotOverrunTheLimit: 60 wrong passwords for one
// user at once, against a burst of 10, hash at most 10 times; the others
// are refused before any hashing.
func TestConcurrentGuessesCannotOverrunTheLimit(t *testing.T) {
	e := newEnv(t, func(c *server.Config) {
		c.LoginLimit = server.LoginLimit{Burst: 10, Every: time.Hour}
		c.LoginLimitPerClient = c.LoginLimit
	})
	got := e.concurrentLogins(60, testUser, "wrong guess")
	// 503s (no hash slot in time) tested no password either.
	if got[401] == 0 || got[401] > 10 || got[401]+got[429]+got[503] != 60 {
		t.Fatalf("statuses %v; want at most 10 × 401 (one hash each) and the rest 429 or 503", got)
	}
	if n := e.metric(`silentrefresh_login_total{outcome="invalid_credentials"}`); n != strconv.Itoa(got[401]) {
		t.Fatalf("%s passwords tested, %d answered 401", n, got[401])
	}
}

// TestSuccessfulLoginsDoNotSpendTheLimit: the slot an attempt reserves is
// given back when the password was right.
func TestSuccessfulLoginsDoNotSpendTheLimit(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.LoginLimit = server.LoginLimit{Burst: 2, Every: time.Hour} })
	for i := range 10 {
		if r := e.loginFrom("", testUser, testPassword); r.status != 200 {
			t.Fatalf("login %d: %d %s", i, r.status, r.raw)
		}
	}
	// The failures still count: burst 2 per user, 1 per user and address.
	expectError(t, e.loginFrom("", testUser, "wrong"), 401, "invalid_credentials")
	expectError(t, e.loginFrom("", testUser, testPassword), 429, "rate_limited")
}

// TestNoisyAddressLocksItselfOutFirst: one address guessing a user is
// stopped by the per-(user, address) limit while the user logs in from
// elsewhere; guesses from many addresses still meet the per-user limit.
func TestNoisyAddressLocksItselfOutFirst(t *testing.T) {
	e := newEnv(t, func(c *server.Config) {
		c.LoginLimit = server.LoginLimit{Burst: 10, Every: time.Hour}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
	})
	const attacker, owner = "198.51.100.66", "203.0.113.10"
	for range 5 { // the default per-client burst: half the per-user one
		expectError(t, e.loginFrom(attacker, testUser, "guess"), 401, "invalid_credentials")
	}
	r := e.loginFrom(attacker, testUser, "guess")
	expectError(t, r, 429, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	if r := e.loginFrom(owner, testUser, testPassword); r.status != 200 {
		t.Fatalf("the owner, from another address, after the attacker locked itself out: %d %s", r.status, r.raw)
	}
	// Five more addresses with one guess each use up the per-user burst.
	for i := range 5 {
		expectError(t, e.loginFrom(fmt.Sprintf("192.0.2.%d", i+1), testUser, "guess"), 401, "invalid_credentials")
	}
	expectError(t, e.loginFrom("192.0.2.99", testUser, testPassword), 429, "rate_limited")
}

// TestPerAddressLimit: one address guessing many usernames is stopped.
func TestPerAddressLimit(t *testing.T) {
	e := newEnv(t, func(c *server.Config) {
		c.LoginLimitPerAddress = server.LoginLimit{Burst: 3, Every: time.Hour}
	})
	for _, name := range []string{"u1", "u2", "u3"} {
		expectError(t, e.loginFrom("", name, "guess"), 401, "invalid_credentials")
	}
	expectError(t, e.loginFrom("", "u4", "guess"), 429, "rate_limited")
}

// TestSpoofedForwardingHeadersAreIgnored: without a trusted proxy in
// between, a client rotating X-Forwarded-For and Forwarded values is still
// one address to the limits.
func TestSpoofedForwardingHeadersAreIgnored(t *testing.T) {
	e := newEnv(t, func(c *server.Config) {
		c.LoginLimit = server.LoginLimit{Burst: 4, Every: time.Hour}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	for i := range 2 {
		r := e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": "guess"},
			"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1), "Forwarded", fmt.Sprintf("for=203.0.113.%d", i+1))
		expectError(t, r, 401, "invalid_credentials")
	}
	r := e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": "guess"},
		"X-Forwarded-For", "198.51.100.9", "Forwarded", "for=203.0.113.9")
	expectError(t, r, 429, "rate_limited")
}

// TestOversizedPasswordIsBadInputNotAGuess: a password over the length
// limit is a 400 before the limits, counted nowhere and never hashed.
func TestOversizedPasswordIsBadInputNotAGuess(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.LoginLimit = server.LoginLimit{Burst: 1, Every: time.Hour} })
	long := strings.Repeat("p", user.MaxPasswordLen+1)
	for range 5 {
		r := e.loginFrom("", testUser, long)
		expectError(t, r, 400, "invalid_request")
		if !strings.Contains(r.body["error_description"].(string), "longer than") {
			t.Fatalf("description %q does not name the problem", r.body["error_description"])
		}
	}
	form := e.postForm("/oauth2/token", map[string][]string{"grant_type": {"password"}, "username": {testUser}, "password": {long}})
	expectError(t, form, 400, "invalid_request")
	if r := e.loginFrom("", testUser, testPassword); r.status != 200 {
		t.Fatalf("login after oversized passwords: %d %s", r.status, r.raw)
	}
	if n := e.metric(`silentrefresh_login_total{outcome="invalid_credentials"}`); n != "0" {
		t.Fatalf("oversized passwords counted as %s failed logins", n)
	}
}

// TestRateLimitedLoginsAreAggregatedAndUsernamesNotLogged: a client
// hammering the login endpoint does not write a line per attempt, and no
// username (into which a password may have been typed) is logged as it is.
func TestRateLimitedLoginsAreAggregatedAndUsernamesNotLogged(t *testing.T) {
	var logs server.LogBuffer
	const typedPassword = "hunter2-typed-as-username"
	e := newEnv(t, func(c *server.Config) {
		c.LoginLimit = server.LoginLimit{Burst: 2, Every: time.Hour}
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	for range 100 {
		e.loginFrom("", typedPassword, "x")
	}
	if r := e.loginFrom("", typedPassword, "x"); r.status != 429 {
		t.Fatalf("attempt after 100: %d", r.status)
	}
	out := logs.String()
	if lines := strings.Count(out, "\n"); lines > 3 {
		t.Fatalf("%d log lines for 100 attempts, 99 of them refused:\n%s", lines, out)
	}
	if strings.Contains(out, typedPassword) {
		t.Fatalf("the username is logged verbatim:\n%s", out)
	}
	if !strings.Contains(out, "login failed") {
		t.Fatalf("the failed attempt is not logged:\n%s", out)
	}
}
