package postgres_test

import (
	"sync"
	"testing"

	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/store/postgres"
	"github.com/silentrefresh/silentrefresh/store/postgres/pgtest"
	"github.com/silentrefresh/silentrefresh/store/storetest"
)

// TestConformance runs the store conformance suite; every Open gets its own
// schema.
func TestConformance(t *testing.T) {
	pgtest.ServerDSN(t)
	var mu sync.Mutex
	dsns := map[store.Store]string{} // guarded by mu
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) store.Store {
			dsn := pgtest.NewDSN(t)
			s, err := postgres.Open(t.Context(), dsn)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			mu.Lock()
			dsns[s] = dsn
			mu.Unlock()
			return s
		},
		Reopen: func(t *testing.T, old store.Store) store.Store {
			mu.Lock()
			dsn, ok := dsns[old]
			mu.Unlock()
			if !ok {
				t.Fatalf("Reopen of a store this harness did not open: %T", old)
			}
			s, err := postgres.Open(t.Context(), dsn)
			if err != nil {
				t.Fatalf("Reopen: %v", err)
			}
			mu.Lock()
			dsns[s] = dsn
			mu.Unlock()
			return s
		},
	})
}
