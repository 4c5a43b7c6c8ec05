package assertion_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/silentrefresh/silentrefresh/assertion"
)

// TestIssuerNameCannotForgeAnotherNamespace: a session's subject is
// NAME|sub, so an issuer named "app|admin" would share its subjects with
// the users "admin|…" of an issuer "app". A name holding the separator is
// refused at start.
func TestIssuerNameCannotForgeAnotherNamespace(t *testing.T) {
	sf := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(sf, []byte(strings.Repeat("k", 64)), 0o600); err != nil {
		t.Fatal(err)
	}
	iss, err := assertion.ParseIssuer("app|admin=hs256:" + sf)
	if err == nil {
		_, err = assertion.NewValidator(assertion.Config{Issuers: []assertion.Issuer{iss}, Audiences: []string{aud}, Replay: replayStore(t)})
	}
	if err == nil || !strings.Contains(err.Error(), "|") {
		t.Fatalf("an issuer named app|admin: %v", err)
	}
}
