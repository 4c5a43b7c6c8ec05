package bearer_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/bearer"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/token"
)

const testIssuer = "https://auth.example.test"

// keys is a real issuer and verifier over signing keys in a SQLite file.
type keys struct {
	issuer   *token.Issuer
	verifier *token.Verifier
	now      time.Time
}

func newKeys(t testing.TB) *keys {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now()
	if err := token.EnsureSigningKey(ctx, st, now); err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier(token.NewStoreKeySet(st), token.VerifierConfig{Issuer: testIssuer, Audience: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	return &keys{issuer: token.NewIssuer(st, testIssuer, []string{testIssuer}), verifier: v, now: now}
}

func (k *keys) mint(t *testing.T, sid string, exp time.Time) string {
	t.Helper()
	tok, err := k.issuer.Mint(t.Context(), token.Claims{Subject: "sub-1", SessionID: sid, ExpiresAt: exp, IssuedAt: exp.Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// results records what Require reports.
type results struct {
	mu  sync.Mutex
	got []string
}

func (r *results) observe(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
}

func (r *results) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return ""
	}
	return r.got[len(r.got)-1]
}

func TestRequire(t *testing.T) {
	k := newKeys(t)
	ended := map[string]bool{"sid-ended": true}
	checker := bearer.SessionCheckFunc(func(_ context.Context, sid string) error {
		if ended[sid] {
			return errors.New("revoked")
		}
		return nil
	})
	var obs results
	h := bearer.Require(k.verifier, bearer.WithSessionCheck(checker), bearer.WithObserver(obs.observe))(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := bearer.ClaimsFrom(r.Context())
			if !ok {
				t.Error("no claims in the context of an admitted request")
			}
			io.WriteString(w, c.Subject+" "+c.SessionID)
		}))
	live := k.mint(t, "sid-live", k.now.Add(time.Minute))
	tests := []struct {
		name, header string
		status       int
		result, desc string
		challenge    string
	}{
		{"valid", "Bearer " + live, 200, bearer.ResultValid, "", ""},
		{"lower-case scheme", "bearer " + live, 200, bearer.ResultValid, "", ""},
		{"no header", "", 401, bearer.ResultInvalid, "an Authorization: Bearer header is required", "no bearer token"},
		{"basic", "Basic YTpi", 401, bearer.ResultInvalid, "malformed Authorization header", ""},
		{"garbage", "Bearer a.b.c", 401, bearer.ResultInvalid, "the access token is invalid", ""},
		{"expired", "Bearer " + k.mint(t, "sid-live", k.now.Add(-time.Minute)), 401, bearer.ResultExpired, "the access token has expired", ""},
		{"session ended", "Bearer " + k.mint(t, "sid-ended", k.now.Add(time.Minute)), 401, bearer.ResultSessionEnded, "the session has ended", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status || obs.last() != tc.result {
				t.Fatalf("%d, result %q; want %d, %q (%s)", rec.Code, obs.last(), tc.status, tc.result, rec.Body)
			}
			if tc.status == 200 {
				if rec.Body.String() != "sub-1 sid-live" {
					t.Fatalf("body %q", rec.Body)
				}
				return
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("refusal body %q: %v", rec.Body, err)
			}
			if body["error"] != "invalid_token" || body["error_description"] != tc.desc {
				t.Fatalf("refusal body %v, want description %q", body, tc.desc)
			}
			challenge := tc.challenge
			if challenge == "" {
				challenge = tc.desc
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer error="invalid_token", error_description="`+challenge+`"` {
				t.Fatalf("WWW-Authenticate = %q", got)
			}
			if rec.Header().Get("Cache-Control") != "no-store" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
				t.Fatalf("headers %v", rec.Header())
			}
		})
	}
}

func TestWithErrorHandlerSeesWhy(t *testing.T) {
	k := newKeys(t)
	down := errors.New("store unreachable")
	var got error
	h := bearer.Require(k.verifier,
		bearer.WithSessionCheck(bearer.SessionCheckFunc(func(context.Context, string) error { return down })),
		bearer.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, err error) {
			got = err
			if errors.Is(err, down) {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			bearer.Refuse(w, err)
		}))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("refused request passed on") }))

	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+k.mint(t, "sid", k.now.Add(time.Minute)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 503 || !errors.Is(got, bearer.ErrSessionEnded) || !errors.Is(got, down) {
		t.Fatalf("%d, err %v; want 503 and an error wrapping ErrSessionEnded and the checker's", rec.Code, got)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 401 || !errors.Is(got, bearer.ErrNoToken) {
		t.Fatalf("%d, err %v; want 401 and ErrNoToken", rec.Code, got)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		header, want string
		ok           bool
	}{
		{"Bearer abc", "abc", true},
		{"BEARER  abc.def-ghi_jkl~+/==", "abc.def-ghi_jkl~+/==", true},
		{"", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearer ==", "", false},
		{"Bearer a=b", "", false},
		{`Bearer a"b`, "", false},
		{"Token abc", "", false},
		{"Bearer " + strings.Repeat("a", bearer.MaxHeaderLen), "", false},
	} {
		got, err := bearer.Parse(tc.header)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Parse(%.20q) = %q, %v", tc.header, got, err)
		}
	}
	if _, err := bearer.Parse(""); !errors.Is(err, bearer.ErrNoToken) {
		t.Errorf("Parse(\"\") = %v, want ErrNoToken", err)
	}
}
