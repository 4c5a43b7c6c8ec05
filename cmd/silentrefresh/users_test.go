package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/admin"
	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
)

// opEnv is a SQLite file with users made by "user add", and a server over
// it as another process would run one.
type opEnv struct {
	t   *testing.T
	dsn string
	url string
	st  *sqlite.Store
}

func newOpEnv(t *testing.T, users ...string) *opEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ops.db")
	e := &opEnv{t: t, dsn: "sqlite:" + path}
	for _, u := range users {
		if _, err := e.cli(u+"-pw\n", "user", "add", "--db", e.dsn, "--username", u, "--password-stdin"); err != nil {
			t.Fatalf("user add %s: %v", u, err)
		}
	}
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st
	srv, err := server.New(t.Context(), server.Config{Store: st, Issuer: "http://ops.test"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	e.url = hs.URL
	return e
}

// cli runs the command with stdin and returns its standard output.
func (e *opEnv) cli(stdin string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	err := run(e.t.Context(), args, strings.NewReader(stdin), &stdout, &stderr)
	return stdout.String(), err
}

// cliJSON runs the command with --json and decodes its output.
func (e *opEnv) cliJSON(stdin string, out any, args ...string) {
	e.t.Helper()
	stdout, err := e.cli(stdin, append(args, "--db", e.dsn, "--json")...)
	if err != nil {
		e.t.Fatalf("%v: %v", args, err)
	}
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		e.t.Fatalf("%v: output is not JSON: %v\n%s", args, err, stdout)
	}
}

type grant struct {
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
}

// post sends a JSON body and returns the status and decoded body.
func (e *opEnv) post(path string, body any, bearer string) (int, map[string]any) {
	e.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, e.url+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return e.send(req)
}

func (e *opEnv) send(req *http.Request) (int, map[string]any) {
	e.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

func (e *opEnv) login(name, password string) (grant, int) {
	e.t.Helper()
	status, m := e.post("/api/auth/login", map[string]string{"username": name, "password": password}, "")
	g := grant{}
	if status == http.StatusOK {
		g.AccessToken, _ = m["accessToken"].(string)
		g.RefreshToken, _ = m["refreshToken"].(string)
	}
	return g, status
}

// refused fails the test unless refreshing g is refused as revoked and its
// access token is refused by a session-checked endpoint.
func (e *opEnv) refused(g grant) {
	e.t.Helper()
	status, m := e.post("/api/auth/refresh", map[string]string{"refreshToken": g.RefreshToken}, "")
	if status != http.StatusUnauthorized || m["error"] != "invalid_grant" || m["error_description"] != "revoked" {
		e.t.Errorf("refresh = %d %v, want 401 invalid_grant revoked", status, m)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/api/me", nil)
	req.Header.Set("Authorization", "Bearer "+g.AccessToken)
	if status, m := e.send(req); status != http.StatusUnauthorized {
		e.t.Errorf("/api/me = %d %v, want 401", status, m)
	}
}

// works fails the test unless g's access token is accepted.
func (e *opEnv) works(g grant) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+"/api/me", nil)
	req.Header.Set("Authorization", "Bearer "+g.AccessToken)
	if status, m := e.send(req); status != http.StatusOK {
		e.t.Errorf("/api/me = %d %v, want 200", status, m)
	}
}

func TestUserAndSessionCommands(t *testing.T) {
	e := newOpEnv(t, "alice", "bob")
	a1, _ := e.login("alice", "alice-pw")
	a2, _ := e.login("alice", "alice-pw")
	b1, _ := e.login("bob", "bob-pw")

	var users struct{ Users []admin.UserJSON }
	e.cliJSON("", &users, "user", "list")
	if len(users.Users) != 2 || users.Users[0].Username != "alice" || users.Users[1].Username != "bob" || users.Users[0].Disabled {
		t.Fatalf("user list = %+v", users)
	}
	table, err := e.cli("", "user", "list", "--db", e.dsn)
	if err != nil || !strings.Contains(table, "USERNAME") || !strings.Contains(table, users.Users[1].ID) {
		t.Errorf("user list table = %q, %v", table, err)
	}

	var sessions struct {
		Username string
		Sessions []admin.SessionJSON
	}
	e.cliJSON("", &sessions, "session", "list", "--user", "alice")
	if len(sessions.Sessions) != 2 {
		t.Fatalf("session list = %+v, want 2 sessions", sessions)
	}
	for _, s := range sessions.Sessions {
		if s.CreatedAt.IsZero() || s.LastRefreshedAt.Before(s.CreatedAt) || !s.ExpiresAt.After(s.LastRefreshedAt) || s.AbsoluteExpiresAt.Before(s.ExpiresAt) {
			t.Errorf("session %+v: times out of order", s)
		}
	}
	table, err = e.cli("", "session", "list", "--db", e.dsn, "--user", "alice")
	if err != nil || !strings.Contains(table, "LAST REFRESHED") || !strings.Contains(table, sessions.Sessions[0].ID) {
		t.Errorf("session list table = %q, %v", table, err)
	}

	// Disable: both sessions of alice end at once, bob's does not, and
	// alice cannot log in.
	var res admin.ResultJSON
	e.cliJSON("", &res, "user", "disable", "--username", "alice")
	if !res.Changed || res.RevokedSessions != 2 {
		t.Errorf("user disable = %+v, want 2 sessions revoked", res)
	}
	e.refused(a1)
	e.refused(a2)
	e.works(b1)
	if _, status := e.login("alice", "alice-pw"); status != http.StatusUnauthorized {
		t.Errorf("login of a disabled user = %d, want 401", status)
	}
	e.cliJSON("", &res, "user", "disable", "--username", "alice")
	if res.Changed || res.RevokedSessions != 0 {
		t.Errorf("disabling again = %+v, want no change", res)
	}
	e.cliJSON("", &users, "user", "list")
	if !users.Users[0].Disabled || users.Users[0].DisabledAt == nil {
		t.Errorf("user list after disable = %+v", users.Users[0])
	}

	e.cliJSON("", &res, "user", "enable", "--username", "alice")
	if !res.Changed || res.RevokedSessions != 0 {
		t.Errorf("user enable = %+v", res)
	}
	a3, status := e.login("alice", "alice-pw")
	if status != http.StatusOK {
		t.Fatalf("login after enable = %d", status)
	}

	// passwd: the new password from stdin, every session revoked.
	out, err := e.cli("new alice pw\n", "user", "passwd", "--db", e.dsn, "--username", "alice")
	if err != nil || !strings.Contains(out, "1 session(s) revoked") {
		t.Errorf("user passwd = %q, %v", out, err)
	}
	e.refused(a3)
	if _, status := e.login("alice", "alice-pw"); status != http.StatusUnauthorized {
		t.Errorf("login with the old password = %d, want 401", status)
	}
	a4, status := e.login("alice", "new alice pw")
	if status != http.StatusOK {
		t.Fatalf("login with the new password = %d", status)
	}

	// session revoke --session, then --user.
	var bs struct{ Sessions []admin.SessionJSON }
	e.cliJSON("", &bs, "session", "list", "--user", "bob")
	if len(bs.Sessions) != 1 {
		t.Fatalf("bob's sessions = %+v", bs)
	}
	e.cliJSON("", &res, "session", "revoke", "--session", bs.Sessions[0].ID)
	if !res.Changed || res.RevokedSessions != 1 {
		t.Errorf("session revoke --session = %+v", res)
	}
	e.refused(b1)
	e.cliJSON("", &res, "session", "revoke", "--session", bs.Sessions[0].ID)
	if res.Changed {
		t.Errorf("revoking a revoked session again = %+v, want no change", res)
	}
	a5, _ := e.login("alice", "new alice pw")
	e.cliJSON("", &res, "session", "revoke", "--user", "alice")
	if res.RevokedSessions != 2 {
		t.Errorf("session revoke --user = %+v, want 2", res)
	}
	e.refused(a4)
	e.refused(a5)

	// delete: gone from the list, its name refused at login.
	a6, _ := e.login("alice", "new alice pw")
	e.cliJSON("", &res, "user", "delete", "--username", "alice")
	if !res.Changed || res.RevokedSessions != 1 {
		t.Errorf("user delete = %+v", res)
	}
	e.refused(a6)
	e.cliJSON("", &users, "user", "list")
	if len(users.Users) != 1 || users.Users[0].Username != "bob" {
		t.Errorf("user list after delete = %+v", users)
	}
	if _, status := e.login("alice", "new alice pw"); status != http.StatusUnauthorized {
		t.Errorf("login of a deleted user = %d, want 401", status)
	}
}

// snapshot is the stored state the bad-input test compares.
func (e *opEnv) snapshot() string {
	e.t.Helper()
	ctx := e.t.Context()
	us, err := e.st.Users(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	for _, u := range us {
		ss, err := e.st.Sessions(ctx, u.ID, time.Now())
		if err != nil {
			e.t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s %s %v %d\n", u.ID, u.Username, u.PasswordHash, u.DisabledAt, len(ss))
	}
	return b.String()
}

func TestUserAndSessionCommandsBadInput(t *testing.T) {
	e := newOpEnv(t, "alice")
	e.login("alice", "alice-pw")
	missing := filepath.Join(t.TempDir(), "missing.db")
	long := strings.Repeat("x", 2000) + "\n"
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string // in the error
	}{
		{"no user subcommand", "", []string{"user"}, "subcommand is required"},
		{"unknown user subcommand", "", []string{"user", "frobnicate"}, `unknown subcommand "frobnicate"`},
		{"disable without username", "", []string{"user", "disable", "--db", e.dsn}, "--username is required"},
		{"disable bad username", "", []string{"user", "disable", "--db", e.dsn, "--username", "a b"}, "space or control"},
		{"disable unknown user", "", []string{"user", "disable", "--db", e.dsn, "--username", "nobody"}, `unknown user "nobody"`},
		{"delete unknown user", "", []string{"user", "delete", "--db", e.dsn, "--username", "nobody"}, `unknown user "nobody"`},
		{"enable unknown user", "", []string{"user", "enable", "--db", e.dsn, "--username", "nobody"}, `unknown user "nobody"`},
		{"passwd empty stdin", "", []string{"user", "passwd", "--db", e.dsn, "--username", "alice"}, "empty"},
		{"passwd too long", long, []string{"user", "passwd", "--db", e.dsn, "--username", "alice"}, "longer than"},
		{"passwd unknown user", "pw\n", []string{"user", "passwd", "--db", e.dsn, "--username", "nobody"}, `unknown user "nobody"`},
		{"extra arguments", "", []string{"user", "disable", "--db", e.dsn, "--username", "alice", "now"}, "unexpected arguments"},
		{"unknown flag", "", []string{"user", "list", "--db", e.dsn, "--all"}, "flag provided but not defined"},
		{"missing database", "", []string{"user", "disable", "--db", "sqlite:" + missing, "--username", "alice"}, "no database there"},
		{"list missing database", "", []string{"user", "list", "--db", "sqlite:" + missing}, "no database there"},
		{"unknown database kind", "", []string{"user", "list", "--db", "mysql://x"}, "unknown database"},
		{"no session subcommand", "", []string{"session"}, "subcommand is required"},
		{"session list without user", "", []string{"session", "list", "--db", e.dsn}, "--user is required"},
		{"session list unknown user", "", []string{"session", "list", "--db", e.dsn, "--user", "nobody"}, `unknown user "nobody"`},
		{"revoke neither", "", []string{"session", "revoke", "--db", e.dsn}, "exactly one of"},
		{"revoke both", "", []string{"session", "revoke", "--db", e.dsn, "--user", "alice", "--session", "AAAAAAAAAAAAAAAAAAAAAA"}, "exactly one of"},
		{"revoke malformed id", "", []string{"session", "revoke", "--db", e.dsn, "--session", "not-an-id"}, "is not a session ID"},
		{"revoke padded id", "", []string{"session", "revoke", "--db", e.dsn, "--session", "AAAAAAAAAAAAAAAAAAAAAA=="}, "is not a session ID"},
		{"revoke unknown id", "", []string{"session", "revoke", "--db", e.dsn, "--session", "AAAAAAAAAAAAAAAAAAAAAA"}, "unknown session"},
		{"revoke unknown user", "", []string{"session", "revoke", "--db", e.dsn, "--user", "nobody"}, `unknown user "nobody"`},
	}
	before := e.snapshot()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.cli(tc.stdin, tc.args...)
			if err == nil {
				t.Fatalf("%v succeeded: %q", tc.args, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if after := e.snapshot(); after != before {
				t.Errorf("stored state changed:\n%s\nwas\n%s", after, before)
			}
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("a command on a missing database created %s", missing)
	}
}
