// Package storetest is the conformance suite of store.Store: every backend
// (store/sqlite, store/postgres, store/memstore) runs it unchanged from its
// own tests.
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
	"sync"
	"testing"

	"github.com/silentrefresh/silentrefresh/store"
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
	for _, tc := range append(storeTests, accountTests...) {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, &suite{h: h}) })
	}
	for _, tc := range append(adoptTests, chainTests...) {
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
