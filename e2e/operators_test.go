package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/store/postgres/pgtest"
)

// The admin token of the replicas in these tests.
const e2eAdminToken = "e2e-admin-token-0123456789"

// cli runs the silentrefresh binary with args and stdin, and fails the
// test unless it succeeds.
func cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = childEnv()
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("silentrefresh %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// adminCall sends a request to a replica's admin listener.
func adminCall(t *testing.T, s *server, method, path, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.adminURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e2eAdminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestOperatorsAcrossReplicasPostgres: two replicas on one PostgreSQL.
func TestOperatorsAcrossReplicasPostgres(t *testing.T) {
	operatorsAcrossReplicas(t, pgtest.NewDSN(t))
}

// TestOperatorsAcrossReplicasSQLite: two server processes on one SQLite
// file.
func TestOperatorsAcrossReplicasSQLite(t *testing.T) {
	operatorsAcrossReplicas(t, "sqlite:"+filepath.Join(t.TempDir(), "silentrefresh.db"))
}

// operatorsAcrossReplicas: an operator's change made through the CLI on
// the database, or through one replica's admin listener, ends the user's
// sessions on every replica at once: the first session-checked request
// after the change is answered 401 on each, and the refresh is refused as
// revoked. Another user's sessions go on.
func operatorsAcrossReplicas(t *testing.T, db string) {
	tokFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokFile, []byte(e2eAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srvs := startServers(t, 2, db, "--admin-addr", "127.0.0.1:0", "--admin-token-file", tokFile)
	for _, s := range srvs {
		if s.adminURL == "" {
			t.Fatalf("replica at %s printed no admin address", s.url)
		}
	}
	addUser(t, db, username, password)
	addUser(t, db, "bob", "bob's password")
	ctx := t.Context()
	hc := newHTTPClient()

	// alice logs in on each replica; bob on the second.
	loginOn := func(s *server, name, pw string) tokens {
		t.Helper()
		tok, err := login(ctx, hc, s.url, name, pw)
		if err != nil {
			t.Fatalf("login %s on %s: %v", name, s.url, err)
		}
		return tok
	}
	// ended checks, with the first request after the change, that every
	// replica refuses the sessions, and that refreshing them is refused as
	// revoked. On PostgreSQL a replica answers the session check from its
	// cache until the change's notification has reached it (a change made
	// by another process: the CLI, another replica), so there /api/me is
	// asked again until it refuses, within the same one second.
	onPostgres := strings.HasPrefix(db, "postgres")
	ended := func(what string, changed time.Time, toks ...tokens) {
		t.Helper()
		for _, tok := range toks {
			for _, s := range srvs {
				for {
					err := get(ctx, hc, s.url+"/api/me", tok.Access, nil)
					var ae *apiError
					if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
						break
					}
					if !onPostgres || time.Since(changed) > time.Second {
						t.Errorf("%s: /api/me on %s = %v, want 401", what, s.url, err)
						break
					}
				}
			}
			for _, s := range srvs {
				_, err := refresh(ctx, hc, s.url, tok.Refresh)
				var ae *apiError
				if !errors.As(err, &ae) || ae.Code != "invalid_grant" || ae.Desc != "revoked" {
					t.Errorf("%s: refresh on %s = %v, want invalid_grant revoked", what, s.url, err)
				}
			}
		}
		if d := time.Since(changed); d > time.Second {
			t.Errorf("%s: checks took %v after the change, want within 1s", what, d)
		}
	}
	works := func(what string, tok tokens) {
		t.Helper()
		for _, s := range srvs {
			if err := get(ctx, hc, s.url+"/api/me", tok.Access, nil); err != nil {
				t.Errorf("%s: bob's /api/me on %s: %v", what, s.url, err)
			}
		}
	}
	a0, a1 := loginOn(srvs[0], username, password), loginOn(srvs[1], username, password)
	bob := loginOn(srvs[1], "bob", "bob's password")
	works("before", a0)
	works("before", a1)

	// 1. user disable through the CLI, on the database.
	out := cli(t, "", "user", "disable", "--db", db, "--username", username)
	changed := time.Now()
	if !strings.Contains(out, "2 session(s) revoked") {
		t.Errorf("user disable: %q", out)
	}
	ended("after user disable", changed, a0, a1)
	works("after alice's disable", bob)
	if _, err := login(ctx, hc, srvs[0].url, username, password); err == nil {
		t.Error("a disabled user logged in")
	}

	// 2. enable and delete through the admin listeners of either replica.
	if code := adminCall(t, srvs[1], "POST", "/admin/users/"+username+"/enable", ""); code != 200 {
		t.Fatalf("admin enable: %d", code)
	}
	a2, a3 := loginOn(srvs[0], username, password), loginOn(srvs[1], username, password)
	if code := adminCall(t, srvs[0], "DELETE", "/admin/users/"+username, ""); code != 200 {
		t.Fatalf("admin delete: %d", code)
	}
	ended("after admin delete", time.Now(), a2, a3)
	works("after alice's delete", bob)

	// 3. passwd through the CLI, then revoking one session through an
	// admin listener.
	b2 := loginOn(srvs[0], "bob", "bob's password")
	cli(t, "bob's new password\n", "user", "passwd", "--db", db, "--username", "bob")
	ended("after user passwd", time.Now(), bob, b2)
	b3 := loginOn(srvs[1], "bob", "bob's new password")
	b4 := loginOn(srvs[0], "bob", "bob's new password")
	if code := adminCall(t, srvs[1], "DELETE", "/admin/sessions/"+b3.SID, ""); code != 200 {
		t.Fatalf("admin revoke session: %d", code)
	}
	ended("after admin session revoke", time.Now(), b3)
	works("the other session", b4)
	out = cli(t, "", "session", "list", "--db", db, "--user", "bob")
	if !strings.Contains(out, b4.SID) || strings.Contains(out, b3.SID) {
		t.Errorf("session list after the revoke:\n%s\nwant %s and not %s", out, b4.SID, b3.SID)
	}
	cli(t, "", "session", "revoke", "--db", db, "--user", "bob")
	ended("after session revoke --user", time.Now(), b4)
}

// TestKeysAcrossReplicasSQLite and …Postgres: "keys rotate" on the
// database makes every replica sign with the new key within
// token.IssuerMaxAge while tokens of the old key go on verifying; "keys
// retire --force" makes every replica refuse them.
func TestKeysAcrossReplicasSQLite(t *testing.T) {
	keysAcrossReplicas(t, "sqlite:"+filepath.Join(t.TempDir(), "silentrefresh.db"))
}

func TestKeysAcrossReplicasPostgres(t *testing.T) {
	keysAcrossReplicas(t, pgtest.NewDSN(t))
}

func keysAcrossReplicas(t *testing.T, db string) {
	srvs := startServers(t, 2, db, "--access-ttl", "1m")
	addUser(t, db, username, password)
	ctx := t.Context()
	hc := newHTTPClient()
	old, err := login(ctx, hc, srvs[0].url, username, password)
	if err != nil {
		t.Fatal(err)
	}
	var rot struct {
		New struct{ ID string }
	}
	if err := json.Unmarshal([]byte(cli(t, "", "keys", "rotate", "--db", db, "--access-ttl", "1m", "--json")), &rot); err != nil || rot.New.ID == "" {
		t.Fatalf("keys rotate: %v %+v", err, rot)
	}
	// Each replica signs with the new key within IssuerMaxAge (5 s); poll
	// with a deadline, as the replicas are other processes.
	deadline := time.Now().Add(15 * time.Second)
	for _, s := range srvs {
		for {
			tok, err := login(ctx, hc, s.url, username, password)
			if err != nil {
				t.Fatal(err)
			}
			if kid := accessKID(t, tok.Access); kid == rot.New.ID {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still signs with the old key after the rotation", s.url)
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
		if err := get(ctx, hc, s.url+"/api/me", old.Access, nil); err != nil {
			t.Errorf("a token of the retired key on %s: %v", s.url, err)
		}
	}
	cli(t, "", "keys", "retire", "--db", db, "--force")
	// The replicas reload their keys every few seconds: each refuses the
	// old token within that.
	deadline = time.Now().Add(15 * time.Second)
	for _, s := range srvs {
		for {
			err := get(ctx, hc, s.url+"/api/me", old.Access, nil)
			var ae *apiError
			if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still accepts a token of the deleted key: %v", s.url, err)
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	out := cli(t, "", "keys", "list", "--db", db)
	if !strings.Contains(out, rot.New.ID) || strings.Count(out, "\n") != 2 {
		t.Errorf("keys list after the forced retire:\n%s", out)
	}
}

// accessKID is the kid in the header of an access token.
func accessKID(t *testing.T, jwt string) string {
	t.Helper()
	h, _, _ := strings.Cut(jwt, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct{ Kid string }
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}
