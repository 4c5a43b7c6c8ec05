package server_test

import (
	"strings"
	"testing"
)

// TestAdminHostileInput: path tricks, oversize and duplicate-key bodies,
// huge numbers and wrong types on the admin API are 4xx JSON answers, and
// change nothing.
func TestAdminHostileInput(t *testing.T) {
	e := newAdminEnv(t)
	before := e.adminState()
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/admin/users/..%2Falice", ""},
		{"GET", "/admin/users/alice%00", ""},
		{"GET", "/admin/users/" + strings.Repeat("a", 65), ""},
		{"DELETE", "/admin/users/%2e%2e", ""},
		{"DELETE", "/admin/users/alice/sessions/extra", ""},
		{"GET", "/admin/sessions/..%2F..%2Fusers", ""},
		{"DELETE", "/admin/sessions/" + strings.Repeat("A", 23), ""},
		{"DELETE", "/admin/sessions/%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41", ""},
		{"POST", "/admin/users", `{"username":"bob","password":"p1","username":"alice"}`},
		{"POST", "/admin/users", `{"username":"bob","password":1e999}`},
		{"POST", "/admin/users", `{"username":"bob","password":"` + strings.Repeat("x", 2000) + `"}`},
		{"POST", "/admin/users", `{"username":"bob","password":"pw-pw-pw-pw","admin":true}`},
		{"POST", "/admin/users/alice/password", `{"password":""}`},
		{"POST", "/admin/users/alice/disable", `{"now":1e999}`},
		{"POST", "/admin/keys/retire", `{"force": 1}`},
		{"POST", "/admin/keys/retire", `{"keys": ["x"]}`},
		{"POST", "/admin/keys/rotate", `[]`},
	} {
		r := e.adm(c.method, c.path, c.body)
		if r.status/100 != 4 || r.body["error"] == nil {
			t.Errorf("%s %s %.60s: %d %s", c.method, c.path, c.body, r.status, r.raw)
		}
	}
	if after := e.adminState(); after != before {
		t.Fatalf("state changed:\n%s\n%s", before, after)
	}
}
