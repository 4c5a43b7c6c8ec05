package user

import (
	"strings"
	"testing"
)

func TestHashAndVerify(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not argon2id PHC with the default parameters", h)
	}
	h2, _ := HashPassword("correct horse")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{
		{"correct horse", true},
		{"correct horse ", false},
		{"", false},
		{strings.Repeat("x", MaxPasswordLen+1), false},
	} {
		ok, err := VerifyPassword(h, tc.pw)
		if err != nil || ok != tc.want {
			t.Errorf("VerifyPassword(%.20q) = %v, %v; want %v", tc.pw, ok, err, tc.want)
		}
	}
}

func TestVerifyRejectsMalformedHashes(t *testing.T) {
	for _, h := range []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		"$argon2id$v=18$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		"$argon2id$v=19$m=0,t=2,p=1$c2FsdA$aGFzaA",
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdA$aGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$aGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$",
	} {
		if ok, err := VerifyPassword(h, "pw"); err == nil || ok {
			t.Errorf("VerifyPassword(%q) = %v, %v; want an error", h, ok, err)
		}
	}
}

func TestHashPasswordRefusesBadInput(t *testing.T) {
	if _, err := HashPassword(""); err == nil {
		t.Error("empty password accepted")
	}
	if _, err := HashPassword(strings.Repeat("x", MaxPasswordLen+1)); err == nil {
		t.Error("oversized password accepted")
	}
}

func TestValidUsername(t *testing.T) {
	for name, ok := range map[string]bool{"alice": true, "a@b.c": true, "": false, "a b": false, "a\nb": false, strings.Repeat("a", 65): false} {
		if err := ValidUsername(name); (err == nil) != ok {
			t.Errorf("ValidUsername(%q) = %v", name, err)
		}
	}
}
