package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/user"
)

// addUser stores another user with testPassword.
func (e *env) addUser(id, name string) {
	e.t.Helper()
	hash, err := user.HashPasswordParams(testPassword, cheapParams)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.CreateUser(context.Background(), user.User{ID: id, Username: name, PasswordHash: hash, CreatedAt: time.Now()}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) loginAs(name string) (access, refresh string) {
	e.t.Helper()
	r := e.postJSON("/api/auth/login", map[string]string{"username": name, "password": testPassword})
	if r.status != 200 {
		e.t.Fatalf("login %s: %d %s", name, r.status, r.raw)
	}
	return r.body["accessToken"].(string), r.body["refreshToken"].(string)
}

func (e *env) sid(access string) string {
	e.t.Helper()
	r := e.get("/api/me", access)
	if r.status != 200 {
		e.t.Fatalf("/api/me: %d %s", r.status, r.raw)
	}
	return r.body["sid"].(string)
}

func (e *env) live(subject string) int {
	e.t.Helper()
	ss, err := e.store.Sessions(context.Background(), subject, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return len(ss)
}

func TestListOwnSessions(t *testing.T) {
	e := newEnv(t)
	e.addUser("sub-bob", "bob")
	a1, _ := e.login()
	a2, r2 := e.login()
	e.loginAs("bob")
	e.clock.Advance(time.Second)
	if r := e.refresh(r2); r.status != 200 {
		t.Fatal(r.status)
	}
	r := e.get("/api/sessions", a1)
	if r.status != 200 {
		t.Fatalf("/api/sessions: %d %s", r.status, r.raw)
	}
	list := r.body["sessions"].([]any)
	if len(list) != 2 {
		t.Fatalf("%d sessions, want alice's 2: %s", len(list), r.raw)
	}
	first, second := list[0].(map[string]any), list[1].(map[string]any)
	// Most recently used first: the refreshed one.
	if first["id"] != e.sid(a2) || first["current"] != false || second["id"] != e.sid(a1) || second["current"] != true {
		t.Errorf("sessions = %s", r.raw)
	}
	for _, s := range list {
		m := s.(map[string]any)
		for _, k := range []string{"id", "clientId", "createdAt", "lastUsedAt", "expiresAt", "current"} {
			if _, ok := m[k]; !ok {
				t.Errorf("session without %q: %v", k, m)
			}
		}
	}
	if first["lastUsedAt"] == first["createdAt"] {
		t.Errorf("the refreshed session's lastUsedAt is its createdAt: %v", first)
	}
	if r := e.get("/api/sessions", ""); r.status != 401 {
		t.Errorf("/api/sessions without a token: %d", r.status)
	}
}

func TestDeleteOwnSession(t *testing.T) {
	e := newEnv(t)
	e.addUser("sub-bob", "bob")
	a1, _ := e.login()
	a2, r2 := e.login()
	b, rb := e.loginAs("bob")
	do := func(id, access string) response {
		return e.do("DELETE", "/api/sessions/"+id, "", nil, "Authorization", "Bearer "+access)
	}
	// Someone else's session is answered like one that does not exist, and
	// stays live.
	r := do(e.sid(b), a1)
	expectError(t, r, 404, "not_found")
	unknown := do("AAAAAAAAAAAAAAAAAAAAAA", a1)
	expectError(t, unknown, 404, "not_found")
	if string(r.raw) != string(unknown.raw) {
		t.Errorf("someone else's session answered %s, an unknown one %s", r.raw, unknown.raw)
	}
	if e.refresh(rb).status != 200 {
		t.Error("bob's session ended after alice tried to delete it")
	}
	expectError(t, do("not-an-id", a1), 400, "invalid_request")
	expectError(t, do("AAAAAAAAAAAAAAAAAAAAAA==", a1), 400, "invalid_request")
	if r := e.do("DELETE", "/api/sessions/"+e.sid(a2), "", nil); r.status != 401 {
		t.Errorf("DELETE without a token: %d", r.status)
	}
	if e.live("sub-alice") != 2 || e.live("sub-bob") != 1 {
		t.Fatal("a refused delete changed the sessions")
	}

	if r := do(e.sid(a2), a1); r.status != 204 {
		t.Fatalf("delete own other session: %d %s", r.status, r.raw)
	}
	expectError(t, e.refresh(r2), 401, "invalid_grant")
	if r := e.get("/api/me", a2); r.status != 401 {
		t.Errorf("/api/me of the deleted session: %d", r.status)
	}
	if r := e.get("/api/me", a1); r.status != 200 {
		t.Errorf("/api/me of the current session: %d", r.status)
	}
	// Deleting the current session ends it too.
	if r := do(e.sid(a1), a1); r.status != 204 {
		t.Fatalf("delete the current session: %d %s", r.status, r.raw)
	}
	if r := e.get("/api/me", a1); r.status != 401 {
		t.Errorf("/api/me after deleting the current session: %d", r.status)
	}
}

func TestLogoutEverywhere(t *testing.T) {
	tests := []struct {
		name string
		send func(e *env, access, refresh string) response
	}{
		{"body with refresh token", func(e *env, _, rt string) response {
			return e.postJSON("/api/auth/logout", map[string]any{"refreshToken": rt, "all": true})
		}},
		{"query with refresh token", func(e *env, _, rt string) response {
			return e.postJSON("/api/auth/logout?all=true", map[string]any{"refreshToken": rt})
		}},
		{"query with bearer", func(e *env, at, _ string) response {
			return e.do("POST", "/api/auth/logout?all=1", "", nil, "Authorization", "Bearer "+at)
		}},
		{"body with bearer", func(e *env, at, _ string) response {
			return e.do("POST", "/api/auth/logout", "application/json", strings.NewReader(`{"all":true}`), "Authorization", "Bearer "+at)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.addUser("sub-bob", "bob")
			a1, r1 := e.login()
			_, r2 := e.login()
			_, rb := e.loginAs("bob")
			if r := tc.send(e, a1, r1); r.status != 204 {
				t.Fatalf("logout everywhere: %d %s", r.status, r.raw)
			}
			for _, rt := range []string{r1, r2} {
				if r := e.refresh(rt); r.body["error_description"] != "revoked" {
					t.Errorf("refresh after logout everywhere: %d %s", r.status, r.raw)
				}
			}
			if e.refresh(rb).status != 200 {
				t.Error("another user's session ended")
			}
		})
	}
}

func TestLogoutEverywhereRefused(t *testing.T) {
	e := newEnv(t)
	a1, r1 := e.login()
	e.login()
	// A rotated token outside the grace window is no proof of a session.
	if r := e.refresh(r1); r.status != 200 {
		t.Fatal(r.status)
	}
	e.clock.Advance(11 * time.Second)
	expectError(t, e.postJSON("/api/auth/logout", map[string]any{"refreshToken": r1, "all": true}), 401, "invalid_grant")
	expectError(t, e.postJSON("/api/auth/logout", map[string]any{"refreshToken": "nonsense", "all": true}), 401, "invalid_grant")
	expectError(t, e.postJSON("/api/auth/logout?all=maybe", map[string]any{}), 400, "invalid_request")
	expectError(t, e.postJSON("/api/auth/logout?all=true&all=true", map[string]any{}), 400, "invalid_request")
	expectError(t, e.postJSON("/api/auth/logout?all=false", map[string]any{"all": true}), 400, "invalid_request")
	expectError(t, e.postJSON("/api/auth/logout", map[string]any{"all": "yes"}), 400, "invalid_request")
	expectError(t, e.postJSON("/api/auth/logout?all=true", map[string]any{}), 400, "invalid_request")
	if r := e.do("POST", "/api/auth/logout?all=true", "", nil, "Authorization", "Bearer x.y.z"); r.status != 401 {
		t.Errorf("logout everywhere with a bad access token: %d %s", r.status, r.raw)
	}
	if n := e.live("sub-alice"); n != 2 {
		t.Errorf("%d live sessions after refused logouts, want 2", n)
	}
	// all=false is a plain logout of one session.
	if r := e.do("POST", "/api/auth/logout?all=false", "", nil, "Authorization", "Bearer "+a1); r.status != 204 {
		t.Fatalf("logout all=false: %d", r.status)
	}
	if n := e.live("sub-alice"); n != 1 {
		t.Errorf("%d live sessions after a plain logout, want 1", n)
	}
}

func TestSessionCap(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.MaxSessionsPerUser = 3 })
	_, r1 := e.login()
	e.clock.Advance(time.Second)
	a2, r2 := e.login()
	e.clock.Advance(time.Second)
	e.login()
	e.clock.Advance(time.Second)
	// The first session is used again, so the second is the least
	// recently used when a fourth login goes past the cap.
	if r := e.refresh(r1); r.status != 200 {
		t.Fatal(r.status)
	}
	e.clock.Advance(time.Second)
	e.login()
	if n := e.live("sub-alice"); n != 3 {
		t.Errorf("%d live sessions, want the cap 3", n)
	}
	if r := e.refresh(r2); r.body["error_description"] != "revoked" {
		t.Errorf("refresh of the least recently used session: %d %s", r.status, r.raw)
	}
	if r := e.get("/api/me", a2); r.status != 401 {
		t.Errorf("/api/me of the evicted session: %d", r.status)
	}
	f, err := e.store.Family(context.Background(), e.sidOf(a2))
	if err != nil || f.RevokeReason != "session_cap" {
		t.Errorf("evicted family = %+v, %v; want revoked for session_cap", f, err)
	}
}

// sidOf reads the sid claim without the server (the session may be over).
func (e *env) sidOf(access string) string {
	e.t.Helper()
	c, err := e.srv.Verifier().Verify(context.Background(), access)
	if err != nil {
		e.t.Fatal(err)
	}
	return c.SessionID
}

// TestSessionCapConcurrent: many logins of one user at once never leave
// more live sessions than the cap, and each login's own session is live
// when it is answered.
func TestSessionCapConcurrent(t *testing.T) {
	e := newEnv(t, func(c *server.Config) {
		c.MaxSessionsPerUser = 4
		c.LoginLimit = server.LoginLimit{Burst: 1000, Every: time.Millisecond}
		c.PasswordHashes = 24 // every login hashes at once, whatever the cores
	})
	const n = 24
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			req := httptest.NewRequest("POST", "/api/auth/login", strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, testUser, testPassword)))
			rec := httptest.NewRecorder()
			e.srv.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				errs <- fmt.Errorf("login: %d %s", rec.Code, rec.Body)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := e.live("sub-alice"); got != 4 {
		t.Errorf("%d live sessions after %d concurrent logins, want the cap 4", got, n)
	}
}

// TestDisableRacesLogins: a user disabled while logins are in flight has no
// live session once the disable has returned and the logins have been
// answered, whatever the interleaving.
func TestDisableRacesLogins(t *testing.T) {
	for round := range 5 {
		e := newEnv(t, func(c *server.Config) {
			c.LoginLimit = server.LoginLimit{Burst: 1000, Every: time.Millisecond}
			c.PasswordHashes = 16 // every login hashes at once, whatever the cores
		})
		const n = 16
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				req := httptest.NewRequest("POST", "/api/auth/login", strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, testUser, testPassword)))
				rec := httptest.NewRecorder()
				e.srv.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK && rec.Code != http.StatusUnauthorized {
					t.Errorf("login: %d %s", rec.Code, rec.Body)
				}
			})
		}
		close(start)
		if _, err := e.store.UpdateUser(context.Background(), "sub-alice", store.UserChange{
			Disable: true, RevokeReason: "user_disabled", At: e.clock.Now(),
		}); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if got := e.live("sub-alice"); got != 0 {
			t.Fatalf("round %d: %d live sessions of a disabled user", round, got)
		}
	}
}

// FuzzLogoutAll sends arbitrary bodies and "all" query values to logout:
// the answer is never a 5xx, and an error is JSON.
func FuzzLogoutAll(f *testing.F) {
	for _, s := range []string{`{"all":true}`, `{"all":"true"}`, `{"all":1}`, `{"all":null,"refreshToken":"x"}`, `{"refreshToken":"x","all":true}`, ``, `{`} {
		f.Add(s, "true")
		f.Add(s, "")
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body, all string) {
		target := "/api/auth/logout"
		if all != "" {
			target += "?all=" + urlSegment(all)
		}
		req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", target, body, rec.Code, rec.Body)
		}
		if rec.Code != http.StatusNoContent && !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%s %q: %d with a non-JSON body %q", target, body, rec.Code, rec.Body)
		}
	})
}

// TestDeleteSessionCORS: a page on an allowed origin may end a session of
// its user: the preflight allows DELETE.
func TestDeleteSessionCORS(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.AllowedOrigins = []string{"https://app.example"} })
	r := e.do("OPTIONS", "/api/sessions/AAAAAAAAAAAAAAAAAAAAAA", "", nil,
		"Origin", "https://app.example", "Access-Control-Request-Method", "DELETE", "Access-Control-Request-Headers", "authorization")
	if r.status != 204 || !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "DELETE") {
		t.Errorf("preflight for DELETE: %d %v", r.status, r.header)
	}
}
