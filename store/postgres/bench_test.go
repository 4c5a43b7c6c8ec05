package postgres_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

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
