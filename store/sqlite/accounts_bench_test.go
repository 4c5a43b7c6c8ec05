package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store/storetest"
)

// BenchmarkLogin measures storing a login: CreateFamilyCapped with no cap,
// the baseline, beside the default cap of 100 for a user with no other
// live session, with 5, with 99 (just under the cap), and at the cap,
// where every login evicts the least recently used one.
func BenchmarkLogin(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		for _, tc := range []struct {
			name     string
			capped   bool
			existing int
		}{
			{"uncapped", false, 0},
			{"capped-alone", true, 0},
			{"capped-5", true, 5},
			{"capped-99", true, 99},
			{"capped-evicting", true, 100},
		} {
			b.Run(fmt.Sprintf("sync=%s/%s", sync, tc.name), func(b *testing.B) {
				o := defaultOptions()
				o.synchronous = sync
				s := openBench(b, o)
				ctx := context.Background()
				now := time.Now().UTC().Truncate(time.Microsecond)
				n := 0
				create := func(subject string, max int) {
					n++
					id := fmt.Sprintf("login-%d", n)
					at := now.Add(time.Duration(n) * time.Microsecond)
					f := session.Family{ID: id, Subject: subject, CreatedAt: at, ExpiresAt: at.Add(24 * time.Hour)}
					first := session.RefreshToken{Hash: storetest.Hash(id), FamilyID: id, IssuedAt: at, ExpiresAt: at.Add(time.Hour)}
					var err error
					if tc.capped {
						_, err = s.CreateFamilyCapped(ctx, f, first, max, session.RevokeSessionCap)
					} else {
						_, err = s.CreateFamilyCapped(ctx, f, first, 0, "")
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				// Other users' sessions, so the subject index has work.
				for i := range 200 {
					create(fmt.Sprintf("other-%d", i%20), 0)
				}
				for range tc.existing {
					create("u", 0)
				}
				max := 0
				if tc.capped {
					max = 100
				}
				// Below the cap, each measured login is revoked again at
				// once so the number of live sessions stays as set up.
				keep := tc.capped && tc.existing < 100
				b.ResetTimer()
				for b.Loop() {
					create("u", max)
					if keep {
						b.StopTimer()
						if err := s.RevokeFamily(ctx, fmt.Sprintf("login-%d", n), now, "bench"); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
				}
			})
		}
	}
}

// BenchmarkExchangeSpentIndex measures one rotation with the partial index
// on consumed tokens (which the sweep of spent tokens needs) beside the
// same rotation with the index dropped, the baseline.
func BenchmarkExchangeSpentIndex(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		for _, index := range []bool{false, true} {
			b.Run(fmt.Sprintf("sync=%s/index=%v", sync, index), func(b *testing.B) {
				o := defaultOptions()
				o.synchronous = sync
				s := openBench(b, o)
				if !index {
					if _, err := s.w.Exec(`DROP INDEX refresh_tokens_spent`); err != nil {
						b.Fatal(err)
					}
				}
				c := newChain(b, s)
				for range 1000 { // a table that is not empty
					c.rotate(b, s)
				}
				b.ResetTimer()
				for b.Loop() {
					c.rotate(b, s)
				}
			})
		}
	}
}
