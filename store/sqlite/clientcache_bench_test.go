package sqlite

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/registry"
)

// BenchmarkClient is the client-registry lookup of every token request:
// one registered client read from 64 goroutines while another process
// rotates a family on the same file back to back (a refresh load: every
// commit changes the WAL-index header, so the cache reads the registry
// version again after each), with the cache on and off in the same run.
//
// The commits come from another process so that their rate does not hang
// on the Go scheduler: 64 goroutines that never block starve a committing
// goroutine of this process (a request handler would block on its
// connection), which would leave the cached run with far fewer commits to
// check than the uncached one. cpu-ns/op is the CPU time of this process
// per lookup; commits/s is the rate the other process reached meanwhile.
func BenchmarkClient(b *testing.B) {
	for _, cached := range []bool{true, false} {
		b.Run(map[bool]string{true: "cached", false: "uncached"}[cached], func(b *testing.B) {
			s := openBench(b, defaultOptions())
			ctx := context.Background()
			if err := s.AddClient(ctx, registry.Client{ID: "app", SecretHash: "h", Scopes: []string{"read"}, CreatedAt: time.Now()}); err != nil {
				b.Fatal(err)
			}
			var versionReads atomic.Int64
			if cached {
				s.clients.beforeVersion = func() { versionReads.Add(1) }
			} else {
				s.clients = nil
			}
			rotator := startChild(b, "rotate", s.Path(), 1)
			release([]*child{rotator})
			if got := rotator.line(b); got != "rotating" {
				b.Fatalf("child: %s", got)
			}
			tokens := func() int64 {
				var n int64
				if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM refresh_tokens`).Scan(&n); err != nil {
					b.Fatal(err)
				}
				return n
			}
			b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			tokens0, cpu0 := tokens(), processCPU(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Client(ctx, "app"); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			cpu := processCPU(b) - cpu0
			commits := tokens() - tokens0 // one successor token per rotation
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(commits)/b.Elapsed().Seconds(), "commits/s")
			if cached {
				b.ReportMetric(float64(versionReads.Load())/float64(commits), "version-reads/commit")
			}
		})
	}
}

// BenchmarkClientRefresh is the store's part of a refresh: per op, the
// client lookup and one rotation, from 64 goroutines each rotating its own
// family (group commits), with the client cache on and off in the same
// run. Every commit makes the next lookup read the registry version, so
// the cache saves what lookups per commit exceed one; cpu-ns/op is the CPU
// time of the process per refresh.
func BenchmarkClientRefresh(b *testing.B) {
	for _, cached := range []bool{true, false} {
		b.Run(map[bool]string{true: "cached", false: "uncached"}[cached], func(b *testing.B) {
			s := openBench(b, defaultOptions())
			ctx := context.Background()
			if err := s.AddClient(ctx, registry.Client{ID: "app", SecretHash: "h", Scopes: []string{"read"}, CreatedAt: time.Now()}); err != nil {
				b.Fatal(err)
			}
			var versionReads, rowReads atomic.Int64
			if cached {
				s.clients.beforeVersion = func() { versionReads.Add(1) }
				s.clients.afterRead = func(string) { rowReads.Add(1) }
			} else {
				s.clients = nil
			}
			b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			cpu0 := processCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				c := newChain(b, s)
				for pb.Next() {
					if _, err := s.Client(ctx, "app"); err != nil {
						b.Error(err)
						return
					}
					c.rotate(b, s)
				}
			})
			b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			if cached {
				b.ReportMetric(float64(versionReads.Load()+rowReads.Load())/float64(b.N), "stmts/lookup")
			}
		})
	}
}
