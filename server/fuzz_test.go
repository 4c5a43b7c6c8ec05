package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzJSONEndpoints sends arbitrary bodies to the JSON API: the answer is
// always JSON, and never a 5xx.
func FuzzJSONEndpoints(f *testing.F) {
	for _, s := range []string{`{"username":"alice","password":"x"}`, `{"refreshToken":"abc"}`, `{`, `[]`, `null`,
		`{"username":null}`, `{"refreshToken":1e999}`, `{"cookie":"yes"}`, "\xff", `{"a":{"b":[[[[]]]]}}`} {
		f.Add(s, uint8(0))
	}
	e := newEnv(f)
	paths := []string{"/api/auth/login", "/api/auth/refresh", "/api/auth/logout", "/api/auth/exchange"}
	f.Fuzz(func(t *testing.T, body string, which uint8) {
		req := httptest.NewRequest(http.MethodPost, paths[int(which)%len(paths)], strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", req.URL.Path, body, rec.Code, rec.Body)
		}
		if rec.Code != http.StatusNoContent && (!bytes.HasPrefix(rec.Body.Bytes(), []byte("{")) ||
			!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json")) {
			t.Fatalf("%s %q: %d with a non-JSON body %q", req.URL.Path, body, rec.Code, rec.Body)
		}
	})
}
