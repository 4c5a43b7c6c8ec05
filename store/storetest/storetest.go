// Package storetest is the conformance suite of store.Store: every backend
// (store/sqlite, store/postgres) runs it unchanged from its own tests.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			Open:   func(t *testing.T) store.Store { ... a new, empty database ... },
//			Reopen: func(t *testing.T, s store.Store) store.Store { ... the same database again ... },
//		})
//	}
//
// Run covers the contracts of session.Store, token.KeyStore and user.Store
// at the store level (the atomicity of Exchange under 32 concurrent callers,
// first-revocation-wins, microsecond UTC times, durability across Close),
// and then the refresh rules of session.Engine on top of the store, with a
// fake clock. Run the suite with -race.
package storetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// Harness is how the suite gets stores of the backend under test.
type Harness struct {
	// Open returns a Store on a new, empty database (new file, schema or
	// database: nothing written by another test may be visible). The suite
	// closes every Store it is given, so Open need not register a Close.
	Open func(t *testing.T) store.Store

	// Reopen returns a new Store on the same database as s, as another
	// process or replica would open it. s may still be open (the suite then
	// uses both at once) or already closed (the durability test). If Reopen
	// is nil, the tests that need it are skipped.
	Reopen func(t *testing.T, s store.Store) store.Store
}

// Run runs the whole conformance suite, one subtest per contract.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("storetest: Harness.Open is nil")
	}
	for _, tc := range storeTests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, &suite{h: h}) })
	}
	for _, tc := range adoptTests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, &suite{h: h}) })
	}
	t.Run("Engine", func(t *testing.T) {
		for _, tc := range engineTests {
			t.Run(tc.name, func(t *testing.T) { tc.run(t, &suite{h: h}) })
		}
	})
}

// suite hands stores to one subtest and closes them at its end.
type suite struct {
	h Harness
}

func (s *suite) open(t *testing.T) store.Store {
	t.Helper()
	st := s.h.Open(t)
	if st == nil {
		t.Fatal("Harness.Open returned nil")
	}
	return closeAtEnd(t, st)
}

func (s *suite) reopen(t *testing.T, st store.Store) store.Store {
	t.Helper()
	if s.h.Reopen == nil {
		t.Skip("Harness.Reopen is nil")
	}
	n := s.h.Reopen(t, st)
	if n == nil {
		t.Fatal("Harness.Reopen returned nil")
	}
	return closeAtEnd(t, n)
}

// closeAtEnd closes st when the test ends, unless closed earlier through
// the returned Store.
func closeAtEnd(t *testing.T, st store.Store) store.Store {
	c := &onceCloser{Store: st}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// onceCloser makes Close idempotent, so a test may close a store early.
type onceCloser struct {
	store.Store
	once sync.Once
	err  error
}

func (c *onceCloser) Close() error {
	c.once.Do(func() { c.err = c.Store.Close() })
	return c.err
}

// unwrapStore returns the backend's own Store, for Harness.Reopen.
func unwrapStore(st store.Store) store.Store {
	if c, ok := st.(*onceCloser); ok {
		return c.Store
	}
	return st
}

// test is one subtest of the suite.
type test struct {
	name string
	run  func(t *testing.T, s *suite)
}

// T0 is the base instant of the suite: microsecond-precise and not in UTC,
// so that a store dropping precision or the UTC conversion fails.
var T0 = time.Date(2031, time.March, 4, 5, 6, 7, 890123000, time.FixedZone("UTC+05:30", 5*3600+1800))

// Hash is the SHA-256 of s, the stored form of a refresh token s.
func Hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// newFamily returns a family and its first token, valid from T0 for a day.
func newFamily(id string) (session.Family, session.RefreshToken) {
	f := session.Family{
		ID:        id,
		Subject:   "user-" + id,
		ClientID:  "client-" + id,
		CreatedAt: T0,
		ExpiresAt: T0.Add(24 * time.Hour),
	}
	return f, session.RefreshToken{
		Hash:      Hash("rt-" + id + "-0"),
		FamilyID:  id,
		IssuedAt:  T0,
		ExpiresAt: T0.Add(time.Hour),
	}
}

func mustCreate(t *testing.T, st store.Store, id string) (session.Family, session.RefreshToken) {
	t.Helper()
	f, first := newFamily(id)
	if err := st.CreateFamily(context.Background(), f, first); err != nil {
		t.Fatalf("CreateFamily(%s): %v", id, err)
	}
	return f, first
}

// successorOf is the token that rotating tok at the given instant inserts.
func successorOf(tok session.RefreshToken, name string, at time.Time) *session.RefreshToken {
	return &session.RefreshToken{
		Hash:       Hash(name),
		FamilyID:   tok.FamilyID,
		Generation: tok.Generation + 1,
		IssuedAt:   at,
		ExpiresAt:  at.Add(time.Hour),
	}
}

// rotate consumes tok at the given instant for a successor named name, and
// fails the test unless tok was unconsumed.
func rotate(t *testing.T, st store.Store, tok session.RefreshToken, name string, at time.Time) session.RefreshToken {
	t.Helper()
	next := successorOf(tok, name, at)
	err := st.Exchange(context.Background(), tok.Hash, func(c session.Chain) (session.Change, error) {
		if c.Token.Consumed() {
			return session.Change{}, errors.New("token already consumed")
		}
		return session.Change{Consume: next, ConsumedAt: at}, nil
	})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	return *next
}

// equalFamily fails the test unless got is want with times in UTC.
func equalFamily(t *testing.T, got, want session.Family) {
	t.Helper()
	checkTime(t, "Family.CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "Family.ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	checkTime(t, "Family.RevokedAt", got.RevokedAt, want.RevokedAt)
	if got.ID != want.ID || got.Subject != want.Subject || got.ClientID != want.ClientID || got.RevokeReason != want.RevokeReason {
		t.Errorf("family = %+v, want %+v", got, want)
	}
}

// equalToken fails the test unless got is want with times in UTC.
func equalToken(t *testing.T, got, want session.RefreshToken) {
	t.Helper()
	checkTime(t, "RefreshToken.IssuedAt", got.IssuedAt, want.IssuedAt)
	checkTime(t, "RefreshToken.ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	checkTime(t, "RefreshToken.ConsumedAt", got.ConsumedAt, want.ConsumedAt)
	if !bytes.Equal(got.Hash, want.Hash) || got.FamilyID != want.FamilyID || got.Generation != want.Generation ||
		!bytes.Equal(got.SuccessorHash, want.SuccessorHash) {
		t.Errorf("token = %+v, want %+v", got, want)
	}
}

// checkTime fails the test unless got is the instant want, in UTC (or both
// are zero).
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want the zero time", what, got)
		}
		return
	}
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
	if got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, got.Location())
	}
}

var storeTests = []test{
	{"FamilyRoundTrip", testFamilyRoundTrip},
	{"ExchangeConsumes", testExchangeConsumes},
	{"ExchangeZeroChange", testExchangeZeroChange},
	{"ExchangeDecideError", testExchangeDecideError},
	{"ExchangeUnknown", testExchangeUnknown},
	{"ExchangeConcurrent", testExchangeConcurrent},
	{"ExchangeConcurrentTwoStores", testExchangeConcurrentTwoStores},
	{"ExchangeRevoke", testExchangeRevoke},
	{"RevokeFamily", testRevokeFamily},
	{"RevokeExchangeInterleaving", testRevokeExchangeInterleaving},
	{"FamilyTokens", testFamilyTokens},
	{"LoadOrStoreSecret", testLoadOrStoreSecret},
	{"DeleteExpired", testDeleteExpired},
	{"SigningKeys", testSigningKeys},
	{"Users", testUsers},
	{"Ping", testPing},
	{"Durability", testDurability},
}

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
			if err := st.CreateFamily(ctx, tc.f, first); err != nil {
				t.Fatalf("CreateFamily: %v", err)
			}
			got, err := st.Family(ctx, tc.f.ID)
			if err != nil {
				t.Fatalf("Family: %v", err)
			}
			equalFamily(t, got, tc.f)
			if got.Revoked() {
				t.Error("new family is revoked")
			}
			toks, err := st.FamilyTokens(ctx, tc.f.ID)
			if err != nil {
				t.Fatalf("FamilyTokens: %v", err)
			}
			if len(toks) != 1 {
				t.Fatalf("FamilyTokens = %d tokens, want 1", len(toks))
			}
			equalToken(t, toks[0], first)
			if toks[0].Consumed() {
				t.Error("first token is consumed")
			}
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
		if err := st.CreateFamily(ctx, f, first); err == nil {
			t.Error("CreateFamily with a taken ID succeeded")
		}
		// The failed call must not have inserted its token.
		err := st.Exchange(ctx, first.Hash, func(session.Chain) (session.Change, error) { return session.Change{}, nil })
		if !errors.Is(err, session.ErrNotFound) {
			t.Errorf("token of a failed CreateFamily: Exchange error = %v, want ErrNotFound", err)
		}
	})
}

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
	toks, err := st.FamilyTokens(ctx, f.ID)
	if err != nil {
		t.Fatalf("FamilyTokens: %v", err)
	}
	if len(toks) != 2 {
		t.Fatalf("FamilyTokens = %d tokens, want 2", len(toks))
	}
	equalToken(t, toks[0], consumed)
	equalToken(t, toks[1], *next)

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
	rotate(t, st, *next, "third", at.Add(time.Minute))
	fam, err := st.Family(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	equalFamily(t, fam, f)
}

func testExchangeZeroChange(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	f, first := mustCreate(t, st, "fam")
	if err := st.Exchange(ctx, first.Hash, func(session.Chain) (session.Change, error) { return session.Change{}, nil }); err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	toks, err := st.FamilyTokens(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 1 {
		t.Fatalf("FamilyTokens = %d tokens, want 1", len(toks))
	}
	equalToken(t, toks[0], first)
	fam, err := st.Family(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	equalFamily(t, fam, f)
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
	toks, err := st.FamilyTokens(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 1 {
		t.Fatalf("FamilyTokens = %d tokens, want 1: a failed decide wrote", len(toks))
	}
	equalToken(t, toks[0], first)
	fam, err := st.Family(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fam.Revoked() {
		t.Error("family revoked by a failed decide")
	}
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
	toks, err := st.FamilyTokens(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 1 {
		t.Fatalf("FamilyTokens = %d tokens, want 1", len(toks))
	}
	equalToken(t, toks[0], first)
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

func testLoadOrStoreSecret(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	stores := []store.Store{st}
	if s.h.Reopen != nil {
		stores = append(stores, s.reopen(t, unwrapStore(st)))
	}
	const n = 16
	got := make([][]byte, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			cand := bytes.Repeat([]byte{byte(i + 1)}, 32)
			<-start
			got[i], errs[i] = stores[i%len(stores)].LoadOrStoreSecret(ctx, "rotation", cand)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("LoadOrStoreSecret %d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("caller %d got secret %x, caller 0 got %x", i, got[i], got[0])
		}
	}
	if len(got[0]) != 32 || got[0][0] == 0 || !bytes.Equal(got[0], bytes.Repeat(got[0][:1], 32)) {
		t.Errorf("stored secret %x is none of the candidates", got[0])
	}
	again, err := st.LoadOrStoreSecret(ctx, "rotation", []byte("a later candidate"))
	if err != nil || !bytes.Equal(again, got[0]) {
		t.Errorf("LoadOrStoreSecret later = %x, %v; want %x", again, err, got[0])
	}
	other, err := st.LoadOrStoreSecret(ctx, "other", []byte("other secret"))
	if err != nil || string(other) != "other secret" {
		t.Errorf("LoadOrStoreSecret(other) = %q, %v", other, err)
	}
}

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
		if err := st.CreateFamily(ctx, f, first); err != nil {
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

func testSigningKeys(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	if keys, err := st.SigningKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("SigningKeys on an empty store = %d keys, %v", len(keys), err)
	}
	newKey := func(id string, created time.Time) token.Key {
		seed := sha256.Sum256([]byte(id))
		return token.Key{ID: id, Algorithm: token.AlgEdDSA, PrivateKey: ed25519.NewKeyFromSeed(seed[:]), CreatedAt: created}
	}
	// Added out of order: the list is by CreatedAt, newest first.
	k1 := newKey("k1", T0)
	k3 := newKey("k3", T0.Add(2*time.Hour))
	k2 := newKey("k2", T0.Add(time.Hour+time.Microsecond))
	for _, k := range []token.Key{k1, k3, k2} {
		if err := st.AddSigningKey(ctx, k); err != nil {
			t.Fatalf("AddSigningKey(%s): %v", k.ID, err)
		}
	}
	check := func(want ...token.Key) {
		t.Helper()
		got, err := st.SigningKeys(ctx)
		if err != nil {
			t.Fatalf("SigningKeys: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("SigningKeys = %d keys, want %d", len(got), len(want))
		}
		for i := range want {
			checkTime(t, "Key.CreatedAt", got[i].CreatedAt, want[i].CreatedAt)
			if got[i].ID != want[i].ID || got[i].Algorithm != want[i].Algorithm || !want[i].PrivateKey.Equal(got[i].PrivateKey) {
				t.Errorf("key %d = %s/%s, want %s/%s (or private key differs)", i, got[i].ID, got[i].Algorithm, want[i].ID, want[i].Algorithm)
			}
		}
	}
	check(k3, k2, k1)
	if err := st.AddSigningKey(ctx, newKey("k1", T0.Add(3*time.Hour))); err == nil {
		t.Error("AddSigningKey with a taken ID succeeded")
	}
	if err := st.DeleteSigningKey(ctx, "k2"); err != nil {
		t.Fatalf("DeleteSigningKey: %v", err)
	}
	check(k3, k1)
	if err := st.DeleteSigningKey(ctx, "k2"); !errors.Is(err, token.ErrKeyNotFound) {
		t.Errorf("DeleteSigningKey twice error = %v, want ErrKeyNotFound", err)
	}
	if err := st.DeleteSigningKey(ctx, "never"); !errors.Is(err, token.ErrKeyNotFound) {
		t.Errorf("DeleteSigningKey(unknown) error = %v, want ErrKeyNotFound", err)
	}
}

func testUsers(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	alice := user.User{ID: "u-1", Username: "alice", PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA", CreatedAt: T0}
	if err := st.CreateUser(ctx, alice); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	got, err := st.UserByName(ctx, "alice")
	if err != nil {
		t.Fatalf("UserByName: %v", err)
	}
	checkTime(t, "User.CreatedAt", got.CreatedAt, alice.CreatedAt)
	if got.ID != alice.ID || got.Username != alice.Username || got.PasswordHash != alice.PasswordHash {
		t.Errorf("UserByName = %+v, want %+v", got, alice)
	}
	dup := user.User{ID: "u-2", Username: "alice", PasswordHash: "other", CreatedAt: T0}
	if err := st.CreateUser(ctx, dup); !errors.Is(err, user.ErrExists) {
		t.Errorf("CreateUser(taken username) error = %v, want ErrExists", err)
	}
	if got, err := st.UserByName(ctx, "alice"); err != nil || got.ID != alice.ID || got.PasswordHash != alice.PasswordHash {
		t.Errorf("after a refused duplicate, UserByName = %+v, %v", got, err)
	}
	bob := user.User{ID: "u-3", Username: "bob", PasswordHash: "h", CreatedAt: T0.Add(time.Second)}
	if err := st.CreateUser(ctx, bob); err != nil {
		t.Fatalf("CreateUser(bob): %v", err)
	}
	for _, name := range []string{"nobody", "", "alice "} {
		if _, err := st.UserByName(ctx, name); !errors.Is(err, user.ErrNotFound) {
			t.Errorf("UserByName(%q) error = %v, want ErrNotFound", name, err)
		}
	}
}

func testPing(t *testing.T, s *suite) {
	st := s.open(t)
	if err := st.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := st.Ping(context.Background()); err == nil {
		t.Error("Ping after Close succeeded")
	}
}

func testDurability(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	if s.h.Reopen == nil {
		t.Skip("Harness.Reopen is nil")
	}
	f, first := mustCreate(t, st, "kept")
	second := rotate(t, st, first, "kept-1", T0.Add(time.Minute))
	g, _ := mustCreate(t, st, "revoked")
	if err := st.RevokeFamily(ctx, g.ID, T0.Add(time.Minute), "logout"); err != nil {
		t.Fatal(err)
	}
	secret, err := st.LoadOrStoreSecret(ctx, "rotation", bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	seed := sha256.Sum256([]byte("key"))
	key := token.Key{ID: "kid", Algorithm: token.AlgEdDSA, PrivateKey: ed25519.NewKeyFromSeed(seed[:]), CreatedAt: T0}
	if err := st.AddSigningKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	u := user.User{ID: "u", Username: "carol", PasswordHash: "h", CreatedAt: T0}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	re := s.reopen(t, unwrapStore(st))
	fam, err := re.Family(ctx, f.ID)
	if err != nil {
		t.Fatalf("Family after reopen: %v", err)
	}
	equalFamily(t, fam, f)
	toks, err := re.FamilyTokens(ctx, f.ID)
	if err != nil || len(toks) != 2 {
		t.Fatalf("FamilyTokens after reopen = %d, %v; want 2 tokens", len(toks), err)
	}
	equalToken(t, toks[1], second)
	if !bytes.Equal(toks[0].SuccessorHash, second.Hash) || !toks[0].Consumed() {
		t.Errorf("first token after reopen = %+v, want consumed with successor", toks[0])
	}
	rev, err := re.Family(ctx, g.ID)
	if err != nil || !rev.Revoked() || rev.RevokeReason != "logout" {
		t.Errorf("revoked family after reopen = %+v, %v", rev, err)
	}
	if got, err := re.LoadOrStoreSecret(ctx, "rotation", []byte("new candidate")); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("secret after reopen = %x, %v; want %x", got, err, secret)
	}
	if keys, err := re.SigningKeys(ctx); err != nil || len(keys) != 1 || keys[0].ID != "kid" || !key.PrivateKey.Equal(keys[0].PrivateKey) {
		t.Errorf("signing keys after reopen = %v, %v", keys, err)
	}
	if got, err := re.UserByName(ctx, "carol"); err != nil || got.ID != "u" {
		t.Errorf("user after reopen = %+v, %v", got, err)
	}
	// The reopened store goes on rotating where the first left off.
	rotate(t, re, second, "kept-2", T0.Add(2*time.Minute))
}
