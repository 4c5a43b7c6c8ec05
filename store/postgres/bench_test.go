package postgres_test

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/registry"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store/postgres"
	"github.com/silentrefresh/silentrefresh/store/postgres/pgtest"
)

// BenchmarkExchange measures one rotation per op (read the chain under the
// family lock, consume, insert the successor, commit), from 32 goroutines
// per CPU, each on its own family, with durability on.
func BenchmarkExchange(b *testing.B) {
	s, err := postgres.Open(b.Context(), pgtest.NewDSN(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.SetParallelism(32)
	families := 32 * runtime.GOMAXPROCS(0) // one per goroutine
	heads := make([][]byte, families)
	for i := range heads {
		id := fmt.Sprintf("bench-%d", i)
		f := session.Family{ID: id, Subject: "s", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
		tok := session.RefreshToken{Hash: hashOf(id + "/0"), FamilyID: id, IssuedAt: base, ExpiresAt: base.Add(time.Hour)}
		if _, err := s.CreateFamilyCapped(b.Context(), f, tok, 0, ""); err != nil {
			b.Fatal(err)
		}
		heads[i] = tok.Hash
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % families
		head := heads[i]
		for pb.Next() {
			var succ []byte
			err := s.Exchange(b.Context(), head, func(c session.Chain) (session.Change, error) {
				n := session.RefreshToken{Hash: hashOf(fmt.Sprintf("%x/%d", head, c.Token.Generation+1)), FamilyID: c.Family.ID,
					Generation: c.Token.Generation + 1, IssuedAt: base, ExpiresAt: base.Add(time.Hour)}
				succ = n.Hash
				return session.Change{Consume: &n, ConsumedAt: base}, nil
			})
			if err != nil {
				b.Error(err)
				return
			}
			head = succ
		}
	})
}

// BenchmarkFamily measures the session check's store read from 64
// goroutines (32 per CPU on this 2-core machine), answered from the cache
// and, in the same run, with the cache off.
func BenchmarkFamily(b *testing.B) {
	dsn := pgtest.NewDSN(b)
	const families = 256
	ids := make([]string, families)
	seed := openBench(b, dsn, postgres.WithoutCache())
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%d", i)
		f := session.Family{ID: ids[i], Subject: "s", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
		tok := session.RefreshToken{Hash: hashOf(ids[i] + "/0"), FamilyID: ids[i], IssuedAt: base, ExpiresAt: base.Add(time.Hour)}
		if _, err := seed.CreateFamilyCapped(b.Context(), f, tok, 0, ""); err != nil {
			b.Fatal(err)
		}
	}
	benchCacheAndNot(b, dsn, families, func(b *testing.B, s *postgres.Store, i int) error {
		_, err := s.Family(b.Context(), ids[i%families])
		return err
	})
}

// BenchmarkClient measures the token endpoint's client lookup the same
// way: a registered client and an unknown client_id in turn.
func BenchmarkClient(b *testing.B) {
	dsn := pgtest.NewDSN(b)
	seed := openBench(b, dsn, postgres.WithoutCache())
	if err := seed.AddClient(b.Context(), registry.Client{ID: "app", Scopes: []string{"read", "write"}, CreatedAt: base}); err != nil {
		b.Fatal(err)
	}
	ids := []string{"app", "unknown"}
	benchCacheAndNot(b, dsn, len(ids), func(b *testing.B, s *postgres.Store, i int) error {
		_, err := s.Client(b.Context(), ids[i%2])
		if errors.Is(err, registry.ErrNotFound) {
			return nil
		}
		return err
	})
}

func openBench(b *testing.B, dsn string, opts ...postgres.Option) *postgres.Store {
	b.Helper()
	s, err := postgres.Open(b.Context(), dsn, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchCacheAndNot runs lookup (of key i modulo keys) from 32 goroutines
// per CPU on a store with the caches on ("cache") and off ("nocache"). With
// the caches on it reports the share of lookups that queried.
func benchCacheAndNot(b *testing.B, dsn string, keys int, lookup func(b *testing.B, s *postgres.Store, i int) error) {
	for _, bc := range []struct {
		name   string
		cached bool
	}{{"cache", true}, {"nocache", false}} {
		b.Run(bc.name, func(b *testing.B) {
			var opts []postgres.Option
			if !bc.cached {
				opts = append(opts, postgres.WithoutCache())
			}
			s := openBench(b, dsn, opts...)
			waitCacheReady(b, s, bc.cached)
			// Steady state: every key looked up once before the clock
			// starts (64 goroutines missing the same cold key at once
			// would each query it).
			for i := range keys {
				if err := lookup(b, s, i); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.SetParallelism(32)
			q0 := postgres.CacheQueries(s)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1))
				for pb.Next() {
					i++
					if err := lookup(b, s, i); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if bc.cached {
				// The share of lookups that went to the database.
				b.ReportMetric(float64(postgres.CacheQueries(s)-q0)/float64(b.N), "queries/op")

			}
		})
	}
}

// waitCacheReady waits (boundedly) until the store's listener vouches for
// its caches, unless they are off.
func waitCacheReady(b *testing.B, s *postgres.Store, cached bool) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for cached && !postgres.CacheUsable(s) {
		if time.Now().After(deadline) {
			b.Fatal("the listener does not vouch for the caches")
		}
		runtime.Gosched()
	}
}
