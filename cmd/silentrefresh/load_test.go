package main

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/internal/loadgen"
	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// replicas starts n servers over one SQLite file, as "serve" would run
// them on one database, and returns their URLs and the file's DSN.
func replicas(t *testing.T, n int) (urls []string, dsn string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sr.db")
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for range n {
		hs := httptest.NewUnstartedServer(nil)
		srv, err := server.New(t.Context(), server.Config{Store: st, Issuer: "http://sr.test", AccessTTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		hs.Config.Handler = srv
		hs.Start()
		t.Cleanup(hs.Close)
		urls = append(urls, hs.URL)
	}
	return urls, "sqlite:" + path
}

// credentialsFile creates n users in dsn's database and writes their
// username:password lines to a file.
func credentialsFile(t *testing.T, dsn string, n int) string {
	t.Helper()
	st, err := openStore(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var b strings.Builder
	b.WriteString("# load test users\n")
	for i := range n {
		name, pw := fmt.Sprintf("cred-%d", i), fmt.Sprintf("pw-%d", i)
		hash, err := user.HashPasswordParams(pw, demoHashParams)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateUser(t.Context(), user.User{ID: token.NewID(), Username: name, PasswordHash: hash, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", name, pw)
	}
	path := filepath.Join(t.TempDir(), "creds.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// load against two replicas with a credentials file: requests spread over
// both, nothing fails, the summary is one JSON object, the timeline an SVG.
func TestLoad(t *testing.T) {
	urls, dsn := replicas(t, 2)
	creds := credentialsFile(t, dsn, 2)
	tl := filepath.Join(t.TempDir(), "load.svg")
	for _, api := range []string{"json", "oauth2"} {
		t.Run(api, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), []string{"load", "--url", urls[0], "--url", urls[1], "--credentials", creds, "--users", "3",
				"--workers", "2", "--duration", "1500ms", "--think", "5ms", "--api", api, "--json", "--timeline", tl}, nil, &stdout, &stderr)
			if err != nil {
				t.Fatalf("load: %v\n%s\n%s", err, stdout.Bytes(), stderr.Bytes())
			}
			s := decodeSummary(t, stdout.Bytes())
			if !s.OK || s.Mode != "load" || s.Users != 3 || len(s.URLs) != 2 || s.API != loadgen.API(api) {
				t.Errorf("summary %+v", s)
			}
			if s.Requests == 0 || s.Failures != 0 || s.Refreshes == 0 || s.ReuseDetections == nil || *s.ReuseDetections != 0 {
				t.Errorf("summary %+v", s)
			}
			checkSVG(t, tl)
		})
	}
}

// --create-users makes users in the database and can save their
// credentials for the next run; the table is printed without --json.
func TestLoadCreateUsers(t *testing.T) {
	urls, dsn := replicas(t, 1)
	saved := filepath.Join(t.TempDir(), "saved.txt")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"load", "--url", urls[0], "--create-users", "--db", dsn, "--users", "2", "--workers", "2",
		"--duration", "1s", "--think", "5ms", "--save-credentials", saved}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("load: %v\n%s\n%s", err, stdout.Bytes(), stderr.Bytes())
	}
	for _, want := range []string{"created 2 users load-", "requests", "result: OK"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	fi, err := os.Stat(saved)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %v, want 0600", fi.Mode().Perm())
	}
	f, err := os.Open(saved)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	creds, err := loadgen.ReadCredentials(f)
	if err != nil || len(creds) != 2 || !strings.HasPrefix(creds[0].Username, "load-") {
		t.Fatalf("saved credentials %v, %v", creds, err)
	}

	// The saved users log in again.
	stdout.Reset()
	err = run(t.Context(), []string{"load", "--url", urls[0], "--credentials", saved, "--workers", "1", "--duration", "500ms", "--json"}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("second load: %v\n%s", err, stderr.Bytes())
	}
	if s := decodeSummary(t, stdout.Bytes()); !s.OK || s.Users != 2 {
		t.Errorf("second run %+v", s)
	}
}

// Failed requests make the exit status non-zero, and the summary says
// what failed.
func TestLoadFailures(t *testing.T) {
	urls, dsn := replicas(t, 1)
	creds := credentialsFile(t, dsn, 1)
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"load", "--url", urls[0], "--credentials", creds, "--workers", "1", "--duration", "300ms",
		"--think", "10ms", "--path", "/api/nothing-here"}, nil, &stdout, &stderr)
	if err == nil {
		t.Fatalf("load with failing requests succeeded:\n%s", stdout.Bytes())
	}
	for _, want := range []string{"HTTP 404 Not Found", "FAIL  no request failed", "result: FAILED"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
}

// Bad flags are refused before anything starts.
func TestLoadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--credentials", "x"}, "--url is required"},
		{[]string{"--url", "http://127.0.0.1:1"}, "--create-users (with --db) or --credentials"},
		{[]string{"--url", "http://127.0.0.1:1", "--create-users", "--credentials", "x"}, "not both"},
		{[]string{"--url", "http://127.0.0.1:1", "--credentials", "x", "--save-credentials", "y"}, "--save-credentials needs --create-users"},
		{[]string{"--url", "http://127.0.0.1:1", "--credentials", "x", "--api", "soap"}, "--api must be json or oauth2"},
		{[]string{"--url", "http://127.0.0.1:1", "--credentials", "x", "--users", "0"}, "--users must be at least 1"},
		{[]string{"--url", "http://127.0.0.1:1", "--credentials", "x", "--duration", "0s"}, "--duration must be a positive duration"},
		{[]string{"--url", "http://127.0.0.1:1", "--credentials", filepath.Join(t.TempDir(), "missing")}, "--credentials"},
		{[]string{"--url", "127.0.0.1:1", "--credentials", writeTemp(t, "a:b\n")}, "not an http(s) base URL"},
		{[]string{"--url", "http://127.0.0.1:1", "--credentials", writeTemp(t, "garbage\n")}, "want username:password"},
		{[]string{"--url", "http://127.0.0.1:1", "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), append([]string{"load"}, tt.args...), nil, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
