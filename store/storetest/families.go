package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
)

func testFamilyRoundTrip(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	tests := []struct {
		name string
		f    session.Family
	}{
		{"client and zone", session.Family{ID: "fam-a", Subject: "alice", ClientID: "web", CreatedAt: T0, ExpiresAt: T0.Add(720 * time.Hour)}},
		{"no client", session.Family{ID: "fam-b", Subject: "bob", CreatedAt: T0.Add(time.Microsecond), ExpiresAt: T0.Add(time.Hour + time.Microsecond)}},
		{"unicode", session.Family{ID: "fam-ü", Subject: "zoë ✓", ClientID: "cli", CreatedAt: T0.UTC(), ExpiresAt: T0.Add(time.Second)}},
		{"bound to a DPoP key", session.Family{ID: "fam-dpop", Subject: "carol", CreatedAt: T0, ExpiresAt: T0.Add(time.Hour), KeyThumbprint: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"}},
		{"pre-1970", session.Family{ID: "fam-old", Subject: "s", CreatedAt: time.Date(1969, 7, 20, 20, 17, 40, 1000, time.UTC), ExpiresAt: T0}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first := session.RefreshToken{
				Hash:      Hash(fmt.Sprintf("first-%d", i)),
				FamilyID:  tc.f.ID,
				IssuedAt:  tc.f.CreatedAt,
				ExpiresAt: tc.f.CreatedAt.Add(7 * 24 * time.Hour),
			}
			if _, err := st.CreateFamilyCapped(ctx, tc.f, first, 0, ""); err != nil {
				t.Fatalf("CreateFamily: %v", err)
			}
			// A new family is live and its first token unconsumed, as given.
			checkStored(t, st, tc.f, first)
		})
	}
	t.Run("unknown", func(t *testing.T) {
		if _, err := st.Family(ctx, "no-such-family"); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("Family(unknown) error = %v, want ErrNotFound", err)
		}
	})
	t.Run("duplicate ID", func(t *testing.T) {
		f, first := newFamily("fam-a")
		first.Hash = Hash("another first token")
		if _, err := st.CreateFamilyCapped(ctx, f, first, 0, ""); err == nil {
			t.Error("CreateFamily with a taken ID succeeded")
		}
		// The failed call must not have inserted its token.
		err := st.Exchange(ctx, first.Hash, func(session.Chain) (session.Change, error) { return session.Change{}, nil })
		if !errors.Is(err, session.ErrNotFound) {
			t.Errorf("token of a failed CreateFamily: Exchange error = %v, want ErrNotFound", err)
		}
	})
}

func testRevokeFamily(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	f, first := mustCreate(t, st, "fam")
	other, _ := mustCreate(t, st, "other")
	t1 := T0.Add(time.Minute)
	tests := []struct {
		at     time.Time
		reason string
	}{
		{t1, "logout"},
		{t1.Add(time.Second), "admin"},
		{t1.Add(-time.Second), "reused"}, // even an earlier instant does not replace the first revocation
	}
	for _, tc := range tests {
		if err := st.RevokeFamily(ctx, f.ID, tc.at, tc.reason); err != nil {
			t.Fatalf("RevokeFamily(%s): %v", tc.reason, err)
		}
		got, err := st.Family(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := f
		want.RevokedAt, want.RevokeReason = t1, "logout"
		equalFamily(t, got, want)
		if !got.Revoked() {
			t.Error("Revoked() = false after RevokeFamily")
		}
	}
	if err := st.RevokeFamily(ctx, "no-such-family", t1, "logout"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("RevokeFamily(unknown) error = %v, want ErrNotFound", err)
	}
	got, err := st.Family(ctx, other.ID)
	if err != nil {
		t.Fatal(err)
	}
	equalFamily(t, got, other)
	err = st.Exchange(ctx, first.Hash, func(c session.Chain) (session.Change, error) {
		if !c.Family.Revoked() || c.Family.RevokeReason != "logout" {
			t.Errorf("Exchange after RevokeFamily sees family %+v", c.Family)
		}
		return session.Change{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testRevokeExchangeInterleaving(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	stores := []store.Store{st}
	if s.h.Reopen != nil {
		stores = append(stores, s.reopen(t, unwrapStore(st)))
	}
	const rounds = 16
	at := T0.Add(time.Minute)
	for i := range rounds {
		id := fmt.Sprintf("fam-%d", i)
		_, first := mustCreate(t, st, id)
		var (
			wg          sync.WaitGroup
			sawRevoked  bool
			exchangeErr error
			revokeErr   error
		)
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			revokeErr = stores[i%len(stores)].RevokeFamily(ctx, id, at, "logout")
		})
		wg.Go(func() {
			<-start
			exchangeErr = stores[(i+1)%len(stores)].Exchange(ctx, first.Hash, func(c session.Chain) (session.Change, error) {
				sawRevoked = c.Family.Revoked()
				if sawRevoked || c.Token.Consumed() {
					return session.Change{}, nil
				}
				return session.Change{Consume: successorOf(c.Token, id+"-next", at), ConsumedAt: at}, nil
			})
		})
		close(start)
		wg.Wait()
		if revokeErr != nil || exchangeErr != nil {
			t.Fatalf("round %d: RevokeFamily: %v, Exchange: %v", i, revokeErr, exchangeErr)
		}
		fam, err := st.Family(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !fam.Revoked() || fam.RevokeReason != "logout" {
			t.Errorf("round %d: family %+v, want revoked for logout", i, fam)
		}
		toks, err := st.FamilyTokens(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		// Either the exchange ran first and rotated, or it saw the
		// revocation and wrote nothing: never a rotation of a family it
		// saw revoked.
		if rotated := len(toks) == 2; rotated == sawRevoked {
			t.Errorf("round %d: %d tokens stored, but the exchange saw revoked=%v", i, len(toks), sawRevoked)
		}
	}
}

func testFamilyTokens(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	f, tok := mustCreate(t, st, "fam")
	_, otherFirst := mustCreate(t, st, "other")
	want := []session.RefreshToken{tok}
	for i := 1; i <= 5; i++ {
		at := T0.Add(time.Duration(i) * time.Minute)
		next := rotate(t, st, tok, fmt.Sprintf("gen-%d", i), at)
		want[len(want)-1].ConsumedAt = at
		want[len(want)-1].SuccessorHash = next.Hash
		want = append(want, next)
		tok = next
	}
	rotate(t, st, otherFirst, "other-1", T0.Add(time.Minute))

	got, err := st.FamilyTokens(ctx, f.ID)
	if err != nil {
		t.Fatalf("FamilyTokens: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("FamilyTokens = %d tokens, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Generation != int64(i) {
			t.Errorf("token %d has generation %d", i, got[i].Generation)
		}
		equalToken(t, got[i], want[i])
	}
	none, err := st.FamilyTokens(ctx, "no-such-family")
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		t.Errorf("FamilyTokens(unknown) error = %v, want nil or ErrNotFound", err)
	}
	if len(none) != 0 {
		t.Errorf("FamilyTokens(unknown) = %d tokens", len(none))
	}
}
