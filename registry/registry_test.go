package registry

import (
	"strings"
	"testing"
)

func TestSecrets(t *testing.T) {
	s, err := GenerateSecret()
	if err != nil || len(s) < MinSecretLen {
		t.Fatalf("GenerateSecret = %q, %v", s, err)
	}
	s2, _ := GenerateSecret()
	if s == s2 {
		t.Fatal("two generated secrets are equal")
	}
	h, err := HashSecret(s)
	if err != nil || strings.Contains(h, s) || !strings.HasPrefix(h, "sha256:") {
		t.Fatalf("HashSecret = %q, %v", h, err)
	}
	c := Client{ID: "backend", SecretHash: h}
	if !c.Confidential() || !c.Verify(s) || c.Verify(s+"x") || c.Verify("") || c.Verify(s[:len(s)-1]) {
		t.Fatal("Verify accepts a wrong secret or refuses the right one")
	}
	if (Client{ID: "spa"}).Verify("") {
		t.Fatal("a public client verifies a secret")
	}
	if _, err := HashSecret(strings.Repeat("x", MinSecretLen-1)); err == nil {
		t.Fatal("a short secret was hashed")
	}
}

func TestValidIDAndAllows(t *testing.T) {
	for id, ok := range map[string]bool{"backend": true, "a.b-c_d~1": true, "": false, "a:b": false, "a b": false,
		"é": false, strings.Repeat("c", MaxIDLen): true, strings.Repeat("c", MaxIDLen+1): false} {
		if err := ValidID(id); (err == nil) != ok {
			t.Errorf("ValidID(%q) = %v", id, err)
		}
	}
	any := Client{ID: "a"}
	some := Client{ID: "b", Scopes: []string{"read", "write"}}
	none := Client{ID: "c", Scopes: []string{}}
	for _, tc := range []struct {
		c     Client
		scope string
		want  bool
	}{
		{any, "anything at all", true},
		{some, "read", true},
		{some, "write read", true},
		{some, "read admin", false},
		{some, "", true},
		{none, "", true},
		{none, "read", false},
	} {
		if got := tc.c.Allows(tc.scope); got != tc.want {
			t.Errorf("%s.Allows(%q) = %v", tc.c.ID, tc.scope, got)
		}
	}
}
