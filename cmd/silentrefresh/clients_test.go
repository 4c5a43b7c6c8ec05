package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// cli runs the command in-process and returns its output and error.
func cli(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestUserClaimsCommand(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "c.db")
	if out, err := cli(t, "correct horse\n", "user", "add", "--db", dsn, "--username", "alice", "--password-stdin"); err != nil {
		t.Fatalf("user add: %v %s", err, out)
	}
	out, err := cli(t, "", "user", "claims", "alice", "--db", dsn, "--set", "roles=admin,editor", "--set", "tenant=acme")
	if err != nil || !strings.Contains(out, `roles=["admin","editor"]`) || !strings.Contains(out, `tenant="acme"`) {
		t.Fatalf("user claims --set: %v\n%s", err, out)
	}
	out, err = cli(t, "", "user", "claims", "--db", dsn, "--unset", "tenant", "--set", "roles=[admin]", "alice")
	if err != nil || strings.Contains(out, "tenant") || !strings.Contains(out, `roles=["admin"]`) {
		t.Fatalf("user claims --unset: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "claims", "alice", "--db", dsn, "--set", "sub=root"}, `"sub" is reserved`},
		{[]string{"user", "claims", "alice", "--db", dsn, "--set", "scope=admin"}, `"scope" is reserved`},
		{[]string{"user", "claims", "alice", "--db", dsn, "--set", "big=" + strings.Repeat("x", 5000)}, "over the limit"},
		{[]string{"user", "claims", "alice", "--db", dsn, "--set", "novalue"}, "NAME=VALUE"},
		{[]string{"user", "claims", "nobody", "--db", dsn, "--set", "a=b"}, `no user "nobody"`},
	} {
		if out, err := cli(t, "", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v %s, want an error naming %q", tc.args, err, out, tc.want)
		}
	}
	// The refused changes left the claims as they were.
	if out, _ := cli(t, "", "user", "claims", "alice", "--db", dsn); strings.TrimSpace(out) != `roles=["admin"]` {
		t.Fatalf("claims after refused changes:\n%s", out)
	}
}

func TestClientCommands(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "c.db")
	secret := strings.Repeat("k", 40)
	if out, err := cli(t, secret+"\n", "client", "add", "--db", dsn, "--id", "backend", "--secret-stdin", "--scopes", "read,write"); err != nil || !strings.Contains(out, "confidential client backend") {
		t.Fatalf("client add: %v %s", err, out)
	}
	out, err := cli(t, "", "client", "add", "--db", dsn, "--id", "worker", "--generate-secret")
	if err != nil || !strings.Contains(out, "client_secret: ") {
		t.Fatalf("client add --generate-secret: %v %s", err, out)
	}
	if out, err := cli(t, "", "client", "add", "--db", dsn, "--id", "spa"); err != nil || !strings.Contains(out, "public client spa") {
		t.Fatalf("client add public: %v %s", err, out)
	}
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"short\n", []string{"client", "add", "--db", dsn, "--id", "x", "--secret-stdin"}, "at least 32 bytes"},
		{"", []string{"client", "add", "--db", dsn, "--id", "spa"}, "taken"},
		{"", []string{"client", "add", "--db", dsn, "--id", "a:b"}, "':'"},
		{"", []string{"client", "add", "--db", dsn, "--id", "y", "--scopes", `a"b`}, "RFC 6749"},
		{"", []string{"client", "remove", "--db", dsn, "--id", "nope"}, `no client "nope"`},
		{"", []string{"client", "frobnicate"}, "unknown subcommand"},
	} {
		if out, err := cli(t, tc.stdin, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v %s, want an error naming %q", tc.args, err, out, tc.want)
		}
	}
	list, err := cli(t, "", "client", "list", "--db", dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`backend\s+confidential\s+read write\s`, `spa\s+public\s+\(any\)`, `worker\s+confidential\s+\(any\)`} {
		if !regexp.MustCompile(want).MatchString(list) {
			t.Errorf("client list lacks %q:\n%s", want, list)
		}
	}
	if strings.Contains(list, secret) {
		t.Fatal("client list shows a secret")
	}
	// The secret is stored hashed, and verifies.
	st, err := openStore(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.Client(t.Context(), "backend")
	st.Close()
	if err != nil || strings.Contains(c.SecretHash, secret) || !c.Verify(secret) || c.Verify(secret+"x") {
		t.Fatalf("stored client %+v, %v", c, err)
	}
	if out, err := cli(t, "", "client", "remove", "--db", dsn, "--id", "spa"); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("client remove: %v %s", err, out)
	}
}

func TestServeRefusesBadAdoptFlags(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "c.db")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--trusted-issuer", "app"}, "NAME=JWKS_FILE_OR_URL"},
		{[]string{"--trusted-issuer", "app=/does/not/exist.json"}, "no such file"},
		{[]string{"--trusted-issuer", "app=hs256:/does/not/exist"}, "no such file"},
		{[]string{"--assertion-claims", "ghost=roles"}, "NAME a --trusted-issuer"},
		{[]string{"--raw-subject", "ghost"}, "not a --trusted-issuer"},
	} {
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", dsn}, tc.args...)
		if out, err := cli(t, "", args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v %s, want an error naming %q", tc.args, err, out, tc.want)
		}
	}
}
