package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadAdminToken(t *testing.T) {
	good := "0123456789abcdef-token"
	tests := []struct {
		name    string
		path    string
		want    string // the token, or "" for a refusal
		wantErr string
	}{
		{"owner only", writeFile(t, "a", good+"\n", 0o600), good, ""},
		{"owner read-only", writeFile(t, "b", "  "+good+"\r\n", 0o400), good, ""},
		{"world readable", writeFile(t, "c", good, 0o644), "", "lets group or others"},
		{"group readable", writeFile(t, "d", good, 0o640), "", "lets group or others"},
		{"group writable", writeFile(t, "e", good, 0o620), "", "lets group or others"},
		{"empty", writeFile(t, "f", "", 0o600), "", "empty"},
		{"blank", writeFile(t, "g", " \n\n", 0o600), "", "empty"},
		{"short", writeFile(t, "h", "short\n", 0o600), "", "at least 16"},
		{"two words", writeFile(t, "i", "0123456789 abcdefghij", 0o600), "", "white space"},
		{"missing", filepath.Join(t.TempDir(), "none"), "", "no such file"},
		{"directory", t.TempDir(), "", "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAdminToken(tc.path)
			if tc.wantErr == "" {
				if err != nil || got != tc.want {
					t.Fatalf("readAdminToken = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("readAdminToken = %q, %v; want an error saying %q", got, err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "0123456789") {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
}

func TestServeAdminFlagsRefused(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "s.db")
	open := writeFile(t, "tok", "0123456789abcdef-token", 0o644)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--admin-addr", "127.0.0.1:0"}, "needs --admin-token-file"},
		{[]string{"--admin-token-file", writeFile(t, "t2", "0123456789abcdef-token", 0o600)}, "--admin-addr is not"},
		{[]string{"--admin-addr", "127.0.0.1:0", "--admin-token-file", open}, "lets group or others"},
		{[]string{"--admin-addr", "127.0.0.1:0", "--admin-token-file", writeFile(t, "t3", "", 0o600)}, "empty"},
		{[]string{"--max-sessions-per-user", "-1"}, "must not be negative"},
	}
	for _, tc := range tests {
		var out strings.Builder
		err := run(t.Context(), append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db}, tc.args...), nil, &out, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %v = %v; want an error saying %q", tc.args, err, tc.want)
		}
		if strings.Contains(out.String(), "listening") {
			t.Errorf("serve %v started listening: %q", tc.args, out.String())
		}
	}
}

// TestServeAdminListener runs "serve" with an admin listener: the admin
// API answers there with the token, /metrics has moved there, and neither
// is on the public address.
func TestServeAdminListener(t *testing.T) {
	token := "0123456789abcdef-admin"
	tokFile := writeFile(t, "admin-token", token+"\n", 0o600)
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--db", "sqlite:" + filepath.Join(t.TempDir(), "s.db"),
			"--admin-addr", "127.0.0.1:0", "--admin-token-file", tokFile, "--log-level", "error"}, nil, pw, io.Discard)
		pw.Close()
	}()
	var public, adminURL string
	sc := bufio.NewScanner(pr)
	for (public == "" || adminURL == "") && sc.Scan() {
		line := sc.Text()
		if u, ok := strings.CutPrefix(line, "admin listening on "); ok {
			adminURL = u
		} else if u, ok := strings.CutPrefix(line, "listening on "); ok {
			public = u
		}
	}
	go io.Copy(io.Discard, pr)
	if public == "" || adminURL == "" {
		cancel()
		t.Fatalf("serve did not print both addresses: %v", <-done)
	}
	get := func(url, auth string) int {
		req, _ := http.NewRequest("GET", url, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, c := range []struct {
		url, auth string
		want      int
	}{
		{adminURL + "/admin/users", token, 200},
		{adminURL + "/admin/users", "", 401},
		{adminURL + "/admin/users", token + "x", 401},
		{adminURL + "/metrics", token, 200},
		{adminURL + "/metrics", "", 401},
		{public + "/metrics", "", 404},
		{public + "/admin/users", token, 404},
		{public + "/healthz", "", 200},
	} {
		if got := get(c.url, c.auth); got != c.want {
			t.Errorf("GET %s (token %v) = %d, want %d", c.url, c.auth != "", got, c.want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}
