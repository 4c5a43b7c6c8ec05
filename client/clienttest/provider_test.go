package clienttest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

type answer struct {
	status int
	body   map[string]any
}

func post(t *testing.T, rt http.RoundTripper, path, contentType, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://idp"+path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &a.body)
	return a
}

func refreshJSON(t *testing.T, p *Provider, rt string) answer {
	b, _ := json.Marshal(map[string]string{"refreshToken": rt})
	return post(t, p.Transport(), "/api/auth/refresh", "application/json", string(b))
}

// The rotation rules of DESIGN.md, one step at a time.
func TestRotationRules(t *testing.T) {
	clock := NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	p := New(Config{Now: clock.Now, Grace: 10 * time.Second, RefreshTTL: time.Hour})
	t0 := p.Issue("alice").RefreshToken

	a := refreshJSON(t, p, t0)
	if a.status != 200 {
		t.Fatalf("rotate: %+v", a)
	}
	t1 := a.body["refreshToken"].(string)

	steps := []struct {
		name       string
		advance    time.Duration
		token      string
		wantStatus int
		wantReason string
		wantToken  string
	}{
		{"unknown", 0, "nope", 401, ReasonUnknown, ""},
		{"consumed inside grace: same successor", 5 * time.Second, t0, 200, "", t1},
		{"consumed outside grace: reuse, family revoked", 10 * time.Second, t0, 401, ReasonReused, ""},
		{"the successor of a revoked family", 0, t1, 401, ReasonRevoked, ""},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		a := refreshJSON(t, p, s.token)
		if a.status != s.wantStatus || (s.wantReason != "" && a.body["error_description"] != s.wantReason) {
			t.Fatalf("%s: %+v", s.name, a)
		}
		if s.wantToken != "" && a.body["refreshToken"] != s.wantToken {
			t.Fatalf("%s: got another successor", s.name)
		}
	}
	if st := p.Stats(); st.Rotations != 1 || st.GraceReplays != 1 || st.ReuseDetected != 1 || st.InvalidGrants != 3 {
		t.Errorf("stats %+v", st)
	}

	// Superseded: inside grace, but the successor was already used. The
	// chain moved on past a token somebody else holds: the family is
	// revoked, its newest token too.
	u0 := p.Issue("bob").RefreshToken
	u1 := refreshJSON(t, p, u0).body["refreshToken"].(string)
	a = refreshJSON(t, p, u1)
	if a.status != 200 {
		t.Fatalf("rotate u1: %+v", a)
	}
	u2 := a.body["refreshToken"].(string)
	if a := refreshJSON(t, p, u0); a.status != 401 || a.body["error_description"] != ReasonSuperseded {
		t.Fatalf("superseded: %+v", a)
	}
	if a := refreshJSON(t, p, u2); a.status != 401 || a.body["error_description"] != ReasonRevoked {
		t.Fatalf("newest token after superseded: %+v", a)
	}
	if st := p.Stats(); st.Superseded != 1 {
		t.Errorf("stats %+v", st)
	}
	// Idle expiry, on a session of its own.
	v0 := p.Issue("carol").RefreshToken
	clock.Advance(time.Hour + time.Second)
	if a := refreshJSON(t, p, v0); a.body["error_description"] != ReasonExpired {
		t.Fatalf("idle expiry: %+v", a)
	}
}

func TestOAuth2Endpoint(t *testing.T) {
	p := New(Config{ClientSecret: "s", AccessTTL: time.Minute})
	p.AddUser("alice", "pw")
	form := func(v url.Values) string { return v.Encode() }
	const ct = "application/x-www-form-urlencoded"
	if a := post(t, p.Transport(), "/oauth2/token", ct, form(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"pw"}})); a.status != 401 || a.body["error"] != "invalid_client" {
		t.Fatalf("no secret: %+v", a)
	}
	a := post(t, p.Transport(), "/oauth2/token", ct, form(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"pw"}, "client_secret": {"s"}}))
	if a.status != 200 || a.body["token_type"] != "Bearer" || a.body["expires_in"] != float64(60) {
		t.Fatalf("password grant: %+v", a)
	}
	rt := a.body["refresh_token"].(string)
	a = post(t, p.Transport(), "/oauth2/token", ct, form(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_secret": {"s"}}))
	if a.status != 200 || a.body["refresh_token"] == rt {
		t.Fatalf("refresh grant: %+v", a)
	}
	a = post(t, p.Transport(), "/oauth2/token", ct, form(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_secret": {"s"}}))
	if a.status != 400 || a.body["error"] != "invalid_grant" {
		t.Fatalf("bad refresh token: %+v", a)
	}
	a = post(t, p.Transport(), "/oauth2/token", ct, form(url.Values{"grant_type": {"client_credentials"}, "client_secret": {"s"}}))
	if a.status != 400 || a.body["error"] != "unsupported_grant_type" {
		t.Fatalf("unsupported grant: %+v", a)
	}
}

// The in-process transport reports the request as written, and a dropped
// answer as an error after that, like a real connection.
func TestTransportTraceAndDrop(t *testing.T) {
	p := New(Config{})
	tok := p.Issue("alice")
	p.DropNext(1)
	var wrote bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote = true },
	})
	b, _ := json.Marshal(map[string]string{"refreshToken": tok.RefreshToken})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://idp/api/auth/refresh", strings.NewReader(string(b)))
	if _, err := p.Transport().RoundTrip(req); !errors.Is(err, errDropped) || !wrote {
		t.Fatalf("err %v, wrote %v", err, wrote)
	}
	if st := p.Stats(); st.Rotations != 1 || st.DroppedAnswers != 1 {
		t.Errorf("stats %+v: the rotation must be committed", st)
	}
}

// Resources accept live tokens only: unknown, expired, invalidated and
// revoked ones get 401 with a Bearer challenge.
func TestResource(t *testing.T) {
	clock := NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	p := New(Config{Now: clock.Now, AccessTTL: time.Minute})
	status := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://idp/api/me", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := p.Transport().RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 401 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
			t.Error("401 without a Bearer challenge")
		}
		return resp.StatusCode
	}
	a := p.Issue("alice").AccessToken
	if s := status(a); s != 200 {
		t.Fatalf("live token: %d", s)
	}
	if s := status("nope"); s != 401 {
		t.Errorf("unknown token: %d", s)
	}
	clock.Advance(time.Minute)
	if s := status(a); s != 401 {
		t.Errorf("expired token: %d", s)
	}
	b := p.Issue("alice").AccessToken
	p.InvalidateAccessTokens()
	if s := status(b); s != 401 {
		t.Errorf("invalidated token: %d", s)
	}
	c := p.Issue("alice").AccessToken
	if s := status(c); s != 200 {
		t.Errorf("token issued after invalidation: %d", s)
	}
	p.RevokeAll()
	if s := status(c); s != 401 {
		t.Errorf("revoked session: %d", s)
	}
}

// FailNext answers without touching tokens, with Retry-After in whole
// seconds; Hold blocks refreshes until released.
func TestFailuresAndHold(t *testing.T) {
	p := New(Config{})
	tok := p.Issue("alice")
	p.FailNext(1, 429, 1500*time.Millisecond)
	b, _ := json.Marshal(map[string]string{"refreshToken": tok.RefreshToken})
	req, _ := http.NewRequest(http.MethodPost, "http://idp/api/auth/refresh", strings.NewReader(string(b)))
	resp, err := p.Transport().RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("got %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	synctest.Test(t, func(t *testing.T) {
		release := p.Hold()
		done := make(chan int, 1)
		go func() {
			b, _ := json.Marshal(map[string]string{"refreshToken": tok.RefreshToken})
			req, _ := http.NewRequest(http.MethodPost, "http://idp/api/auth/refresh", strings.NewReader(string(b)))
			resp, err := p.Transport().RoundTrip(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		synctest.Wait()
		if len(done) != 0 {
			t.Fatal("answered while held")
		}
		release()
		if s := <-done; s != 200 {
			t.Fatalf("after release: %d", s)
		}
	})
	if st := p.Stats(); st.Rotations != 1 || st.InjectedFailures != 1 || st.RefreshRequests != 2 {
		t.Errorf("stats %+v", st)
	}
}
