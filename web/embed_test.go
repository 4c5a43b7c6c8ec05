package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)

	tests := []struct {
		name        string
		method      string
		path        string
		status      int
		contentType string
		contains    string
	}{
		{"page", "GET", "/", 200, "text/html; charset=utf-8", `<script type="module" src="/app.js">`},
		{"page by name", "GET", "/index.html", 200, "text/html; charset=utf-8", "Tokens that refresh themselves"},
		{"module", "GET", "/silentrefresh.js", 200, "text/javascript; charset=utf-8", "export function createClient"},
		{"declarations", "GET", "/silentrefresh.d.ts", 200, "application/typescript; charset=utf-8", "export function createClient"},
		{"page script", "GET", "/app.js", 200, "text/javascript; charset=utf-8", "from '/silentrefresh.js'"},
		{"style", "GET", "/style.css", 200, "text/css; charset=utf-8", ":root"},
		{"icon", "GET", "/favicon.svg", 200, "image/svg+xml", "<svg"},
		{"head", "HEAD", "/silentrefresh.js", 200, "text/javascript; charset=utf-8", ""},
		{"unknown", "GET", "/nope.js", 404, "application/json", `"not_found"`},
		{"no listing", "GET", "/embed.go", 404, "application/json", `"not_found"`},
		{"post", "POST", "/", 405, "application/json", `"method_not_allowed"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body bytes.Buffer
			if _, err := body.ReadFrom(res.Body); err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", res.StatusCode, tc.status)
			}
			if got := res.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tc.contentType)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if !strings.Contains(body.String(), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
			if tc.method == "HEAD" && body.Len() != 0 {
				t.Errorf("HEAD returned %d bytes", body.Len())
			}
			if tc.status >= 400 {
				var e map[string]string
				if err := json.Unmarshal(body.Bytes(), &e); err != nil {
					t.Errorf("error body is not JSON: %v", err)
				}
			}
		})
	}
}

func TestHandlerPageHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	csp := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
}

func TestHandlerRevalidates(t *testing.T) {
	h := Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/silentrefresh.js", nil))
	etag := rec.Header().Get("ETag")
	if etag == "" || rec.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, rec.Header().Get("Cache-Control"))
	}
	req := httptest.NewRequest("GET", "/silentrefresh.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Fatalf("conditional GET: status %d, want 304", rec.Code)
	}
}
