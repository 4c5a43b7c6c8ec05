package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
)

func testDeleteExpired(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	cut := T0.Add(48 * time.Hour)
	fams := []struct {
		id      string
		expires time.Time
		deleted bool
	}{
		{"long-gone", cut.Add(-24 * time.Hour), true},
		{"just-before", cut.Add(-time.Microsecond), true},
		{"at-cut", cut, false},
		{"after", cut.Add(time.Microsecond), false},
		{"later", cut.Add(24 * time.Hour), false},
	}
	firsts := map[string]session.RefreshToken{}
	for _, fc := range fams {
		f, first := newFamily(fc.id)
		f.ExpiresAt = fc.expires
		first.ExpiresAt = fc.expires
		if _, err := st.CreateFamilyCapped(ctx, f, first, 0, ""); err != nil {
			t.Fatal(err)
		}
		firsts[fc.id] = rotate(t, st, first, fc.id+"-1", T0.Add(time.Minute))
	}
	n, err := st.DeleteExpired(ctx, cut)
	if err != nil {
		t.Fatalf("DeleteExpired: %v", err)
	}
	if n != 2 {
		t.Errorf("DeleteExpired removed %d families, want 2", n)
	}
	for _, fc := range fams {
		_, err := st.Family(ctx, fc.id)
		toks, terr := st.FamilyTokens(ctx, fc.id)
		if terr != nil && !errors.Is(terr, session.ErrNotFound) {
			t.Fatal(terr)
		}
		xerr := st.Exchange(ctx, firsts[fc.id].Hash, func(session.Chain) (session.Change, error) { return session.Change{}, nil })
		if fc.deleted {
			if !errors.Is(err, session.ErrNotFound) || !errors.Is(xerr, session.ErrNotFound) || len(toks) != 0 {
				t.Errorf("%s: after DeleteExpired Family err=%v, Exchange err=%v, %d tokens; want gone", fc.id, err, xerr, len(toks))
			}
		} else if err != nil || xerr != nil || len(toks) != 2 {
			t.Errorf("%s: after DeleteExpired Family err=%v, Exchange err=%v, %d tokens; want kept", fc.id, err, xerr, len(toks))
		}
	}
	if n, err := st.DeleteExpired(ctx, cut); err != nil || n != 0 {
		t.Errorf("second DeleteExpired = %d, %v; want 0, nil", n, err)
	}
}
