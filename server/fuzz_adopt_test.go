package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/silentrefresh/silentrefresh/assertion"
	"github.com/silentrefresh/silentrefresh/server"
)

// FuzzFormEndpoints sends arbitrary form bodies and Authorization headers
// to the token and introspection endpoints of a server that trusts an
// assertion issuer and has registered clients: the answer is always JSON,
// and never a 5xx.
func FuzzFormEndpoints(f *testing.F) {
	for _, s := range []struct{ body, auth string }{
		{"grant_type=" + server.GrantTypeJWTBearer + "&assertion=a.b.c", ""},
		{"grant_type=" + server.GrantTypeJWTBearer + "&assertion=eyJhbGciOiJub25lIn0.e30.&scope=a%22b", ""},
		{"grant_type=password&username=alice&password=x&client_id=backend", "Basic YmFja2VuZDp4"},
		{"token=x", "Basic " + basic("backend", backendSecret)},
		{"token=x&client_id=backend&client_secret=" + backendSecret, ""},
		{"grant_type=refresh_token&refresh_token=x&scope=" + strings.Repeat("a ", 600), "Bearer x"},
		{"%zz", "Basic %%%"},
	} {
		f.Add(s.body, s.auth, uint8(0))
	}
	_, iss := newApp(f)
	e := newEnv(f, func(c *server.Config) { c.TrustedIssuers = []assertion.Issuer{iss} })
	addClients(f, e)
	paths := []string{"/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"}
	f.Fuzz(func(t *testing.T, body, auth string, which uint8) {
		req := httptest.NewRequest(http.MethodPost, paths[int(which)%len(paths)], strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header["Authorization"] = []string{auth}
		}
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", req.URL.Path, body, rec.Code, rec.Body)
		}
		if rec.Body.Len() > 0 && !bytes.HasPrefix(rec.Body.Bytes(), []byte("{")) {
			t.Fatalf("%s %q: %d with a non-JSON body %q", req.URL.Path, body, rec.Code, rec.Body)
		}
	})
}
