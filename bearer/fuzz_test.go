package bearer_test

import (
	"strings"
	"testing"

	"github.com/silentrefresh/silentrefresh/bearer"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "Bearer abc", "bearer abc.def-ghi_jkl~+/==", "Bearer ", "Bearer  x", "Basic abc",
		"Bearer a=b", "Bearer ===", "Bearer a\x00", "Bearer " + strings.Repeat("a", 9000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, err := bearer.Parse(h)
		if err != nil {
			return
		}
		if tok == "" || strings.ContainsAny(tok, " \t\r\n\"\\,;") || !strings.HasSuffix(h, tok) {
			t.Fatalf("Parse(%q) = %q", h, tok)
		}
	})
}
