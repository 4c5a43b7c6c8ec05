package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
)

func testExchangeConsumes(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	f, first := mustCreate(t, st, "fam")
	at := T0.Add(90 * time.Second)
	next := successorOf(first, "second", at)

	calls := 0
	err := st.Exchange(ctx, first.Hash, func(c session.Chain) (session.Change, error) {
		calls++
		equalFamily(t, c.Family, f)
		equalToken(t, c.Token, first)
		if c.Successor != nil {
			t.Errorf("Successor of an unconsumed token = %+v, want nil", c.Successor)
		}
		return session.Change{Consume: next, ConsumedAt: at}, nil
	})
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if calls == 0 {
		t.Fatal("decide was not called")
	}

	consumed := first
	consumed.ConsumedAt, consumed.SuccessorHash = at, next.Hash
	checkStored(t, st, f, consumed, *next)

	// Presented again, the token shows its consumed state and its successor.
	err = st.Exchange(ctx, first.Hash, func(c session.Chain) (session.Change, error) {
		equalToken(t, c.Token, consumed)
		if c.Successor == nil {
			t.Fatal("Successor of a consumed token is nil")
		}
		equalToken(t, *c.Successor, *next)
		return session.Change{}, nil
	})
	if err != nil {
		t.Fatalf("second Exchange: %v", err)
	}
	// The successor is a token of the family like any other.
	third := rotate(t, st, *next, "third", at.Add(time.Minute))
	second := *next
	second.ConsumedAt, second.SuccessorHash = at.Add(time.Minute), third.Hash
	checkStored(t, st, f, consumed, second, third)
}

func testExchangeZeroChange(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	f, first := mustCreate(t, st, "fam")
	if err := st.Exchange(ctx, first.Hash, func(session.Chain) (session.Change, error) { return session.Change{}, nil }); err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	checkStored(t, st, f, first)
}

func testExchangeDecideError(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	f, first := mustCreate(t, st, "fam")
	errDecide := errors.New("decide refused")
	at := T0.Add(time.Minute)
	err := st.Exchange(ctx, first.Hash, func(c session.Chain) (session.Change, error) {
		// A Change returned with an error must be ignored.
		return session.Change{
			Consume: successorOf(c.Token, "never", at), ConsumedAt: at,
			Revoke: true, RevokeAt: at, RevokeReason: "never",
		}, errDecide
	})
	if err != errDecide {
		t.Fatalf("Exchange error = %v, want the decide error unchanged", err)
	}
	// A failed decide writes nothing: no successor, no revocation.
	checkStored(t, st, f, first)
}

func testExchangeUnknown(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	mustCreate(t, st, "fam")
	for _, h := range [][]byte{Hash("no such token"), {}, nil, []byte("short")} {
		called := false
		err := st.Exchange(ctx, h, func(session.Chain) (session.Change, error) {
			called = true
			return session.Change{}, nil
		})
		if !errors.Is(err, session.ErrNotFound) {
			t.Errorf("Exchange(%x) error = %v, want ErrNotFound", h, err)
		}
		if called {
			t.Errorf("Exchange(%x) called decide for an unknown token", h)
		}
	}
}

// raceExchange makes n goroutines, spread over the given stores, exchange
// the same token at once. Each proposes its own successor and consumes only
// an unconsumed token, so exactly one must win and every other must see the
// winner's consumption.
func raceExchange(t *testing.T, stores []store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	f, first := mustCreate(t, stores[0], "raced")
	at := T0.Add(time.Minute)

	type seen struct {
		consumed  bool
		succ      []byte
		succChain []byte // Chain.Successor.Hash
		err       error
	}
	results := make([]seen, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			st := stores[i%len(stores)]
			mine := successorOf(first, fmt.Sprintf("successor-%d", i), at.Add(time.Duration(i)*time.Microsecond))
			<-start
			var last seen
			err := st.Exchange(ctx, first.Hash, func(c session.Chain) (session.Change, error) {
				// decide may run more than once on a retry: keep the last.
				last = seen{consumed: c.Token.Consumed(), succ: c.Token.SuccessorHash}
				if c.Successor != nil {
					last.succChain = c.Successor.Hash
				}
				if c.Token.Consumed() {
					return session.Change{}, nil
				}
				return session.Change{Consume: mine, ConsumedAt: mine.IssuedAt}, nil
			})
			last.err = err
			results[i] = last
		})
	}
	close(start)
	wg.Wait()

	toks, err := stores[0].FamilyTokens(ctx, f.ID)
	if err != nil {
		t.Fatalf("FamilyTokens: %v", err)
	}
	if len(toks) != 2 {
		t.Fatalf("FamilyTokens = %d tokens, want 2: %d rotations were applied", len(toks), len(toks)-1)
	}
	winner := toks[1].Hash
	if !bytes.Equal(toks[0].SuccessorHash, winner) {
		t.Fatalf("first token's SuccessorHash = %x, stored successor %x", toks[0].SuccessorHash, winner)
	}
	applied := 0
	for i, r := range results {
		if r.err != nil {
			t.Errorf("goroutine %d: Exchange: %v", i, r.err)
			continue
		}
		if !r.consumed {
			applied++
			if !bytes.Equal(winner, Hash(fmt.Sprintf("successor-%d", i))) {
				t.Errorf("goroutine %d saw the token unconsumed but the stored successor is not its own", i)
			}
			continue
		}
		if !bytes.Equal(r.succ, winner) || !bytes.Equal(r.succChain, winner) {
			t.Errorf("goroutine %d saw SuccessorHash %x / Successor %x, want the winner %x", i, r.succ, r.succChain, winner)
		}
	}
	if applied != 1 {
		t.Errorf("%d goroutines saw the token unconsumed and applied a Change, want exactly 1", applied)
	}
}

func testExchangeConcurrent(t *testing.T, s *suite) {
	raceExchange(t, []store.Store{s.open(t)}, 32)
}

func testExchangeConcurrentTwoStores(t *testing.T, s *suite) {
	a := s.open(t)
	b := s.reopen(t, unwrapStore(a))
	raceExchange(t, []store.Store{a, b}, 32)
}

func testExchangeRevoke(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	f, first := mustCreate(t, st, "fam")
	t1, t2 := T0.Add(time.Minute), T0.Add(2*time.Minute)
	revoke := func(at time.Time, reason string) {
		t.Helper()
		err := st.Exchange(ctx, first.Hash, func(session.Chain) (session.Change, error) {
			return session.Change{Revoke: true, RevokeAt: at, RevokeReason: reason}, nil
		})
		if err != nil {
			t.Fatalf("Exchange(revoke %s): %v", reason, err)
		}
	}
	revoke(t1, "reused")
	revoke(t2, "logout")
	want := f
	want.RevokedAt, want.RevokeReason = t1, "reused"
	got, err := st.Family(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	equalFamily(t, got, want)
	err = st.Exchange(ctx, first.Hash, func(c session.Chain) (session.Change, error) {
		equalFamily(t, c.Family, want)
		return session.Change{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Revoking leaves the tokens as they were.
	checkStored(t, st, want, first)
}
