package bearer_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependenciesStayLight: a resource server that imports bearer must not
// pull in a database driver, a migration tool or the metrics library; only
// the token package (and what it needs to verify a JWT) and the standard
// library.
func TestDependenciesStayLight(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed to list the dependencies: %v", err)
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	allowed := map[string]bool{
		"github.com/silentrefresh/silentrefresh/bearer": true,
		"github.com/silentrefresh/silentrefresh/token":  true,
		"github.com/silentrefresh/silentrefresh/dpop":   true,
		"github.com/golang-jwt/jwt/v5":                  true,
	}
	var deps []string
	for _, p := range strings.Fields(string(out)) {
		deps = append(deps, p)
		for _, banned := range []string{"prometheus", "sqlite", "pgx", "goose"} {
			if strings.Contains(p, banned) {
				t.Errorf("bearer depends on %s (%s)", p, banned)
			}
		}
		if !allowed[p] {
			t.Errorf("bearer depends on %s, which is neither the standard library nor token", p)
		}
	}
	if len(deps) == 0 {
		t.Fatal("go list -deps printed no package, not even bearer itself")
	}
}
