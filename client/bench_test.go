package client_test

import (
	"context"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/client/clienttest"
)

// instant is a base RoundTripper that answers at once, so that benchmarks
// measure only what sits in front of it.
type instant struct{}

func (instant) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
}

// floor is the least an authorizing RoundTripper can do: clone the request
// (the RoundTripper contract) and set the header.
type floor struct {
	header string
	base   http.RoundTripper
}

func (f floor) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", f.header)
	return f.base.RoundTrip(r2)
}

// parallelism makes RunParallel use 32 goroutines whatever GOMAXPROCS is.
func parallelism() int {
	return (32 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
}

// roundTrippers are the three contenders of the hot-path benchmarks, all on
// the same instant base and the same valid token.
func roundTrippers(b *testing.B) []namedRT {
	access := "eyJ" + strings.Repeat("x", 600) // the size of a typical JWT
	expiry := time.Now().Add(time.Hour)

	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: instant{}})
	theirs := (&oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: "http://127.0.0.1:1/token"}}).
		Client(ctx, &oauth2.Token{AccessToken: access, TokenType: "Bearer", RefreshToken: "r", Expiry: expiry}).Transport
	ours, err := client.New(client.Config{
		Refresher: client.JSONAPI("http://127.0.0.1:1"),
		Store:     client.NewMemoryStore(client.Tokens{AccessToken: access, RefreshToken: "r", Expiry: expiry}),
		Base:      instant{},
	})
	if err != nil {
		b.Fatal(err)
	}
	return []namedRT{
		{"floor", floor{header: "Bearer " + access, base: instant{}}},
		{"x-oauth2", theirs},
		{"client", ours},
	}
}

type namedRT struct {
	name string
	rt   http.RoundTripper
}

func newBenchRequest() *http.Request {
	req, _ := http.NewRequest(http.MethodGet, "http://api.example/v1/items?page=2", nil)
	req.Header.Set("Accept", "application/json")
	return req
}

// BenchmarkRoundTrip compares the hot path, 32 goroutines at once, with a
// valid token: the floor, golang.org/x/oauth2's Transport, and Client. It
// reports the process's CPU time per request (cpu-ns/op) beside the wall
// time: on a shared machine the CPU time is the steadier of the two.
//
//	go test -run '^$' -bench 'RoundTrip$' -count 6 ./client/
func BenchmarkRoundTrip(b *testing.B) {
	for _, v := range roundTrippers(b) {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(parallelism())
			cpu0, ok := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				req := newBenchRequest()
				for pb.Next() {
					resp, err := v.rt.RoundTrip(req)
					if err != nil || resp.StatusCode != http.StatusOK {
						b.Fatalf("%v %v", resp, err)
					}
				}
			})
			if cpu1, ok1 := cpuTime(); ok && ok1 {
				b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// BenchmarkRoundTripInterleaved is BenchmarkRoundTrip for a noisy machine:
// the three contenders take turns in short slices (32 goroutines, 1,600
// requests each, the order rotating), so that load from other processes
// falls on all of them alike. It reports each one's time per request and
// the ratios to the floor.
//
//	go test -run '^$' -bench 'RoundTripInterleaved' -count 6 ./client/
func BenchmarkRoundTripInterleaved(b *testing.B) {
	const goroutines, per = 32, 50
	rts := roundTrippers(b)
	total := make([]time.Duration, len(rts))
	round := 0
	for b.Loop() {
		for k := range rts {
			i := (k + round) % len(rts)
			start := time.Now()
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					req := newBenchRequest()
					for range per {
						if _, err := rts[i].rt.RoundTrip(req); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			total[i] += time.Since(start)
		}
		round++
	}
	ops := float64(round * goroutines * per)
	for i, v := range rts {
		b.ReportMetric(float64(total[i].Nanoseconds())/ops, v.name+"-ns/req")
	}
	b.ReportMetric(float64(total[2])/float64(total[0]), "client/floor")
	b.ReportMetric(float64(total[1])/float64(total[0]), "x-oauth2/floor")
}

// BenchmarkStorm measures what a refresh costs the requests caught by it:
// each iteration expires the token under 32 concurrent requests, which wait
// for one refresh over real HTTP (127.0.0.1) and go out with its result.
// It reports their mean and longest wait next to the refresh itself as the
// client timed it during the storm (flight) and as a lone refresh takes on
// a quiet client (refresh); max/flight near 1 means a request caught by a
// refresh waits for that one round trip and nothing more.
//
//	go test -run '^$' -bench 'Storm' -count 6 ./client/
func BenchmarkStorm(b *testing.B) {
	const n = 32
	clock := clienttest.NewClock(time.Now())
	srv := clienttest.NewServer(clienttest.Config{Now: clock.Now, AccessTTL: time.Minute})
	defer srv.Close()
	api := client.JSONAPI(srv.URL, client.WithHTTPClient(srv.Client()))
	ctx := context.Background()

	// The reference: lone refresh round trips, on a session of their own.
	var refs []time.Duration
	rt := srv.Issue("ref").RefreshToken
	for range 200 {
		t0 := time.Now()
		g, err := api.Refresh(ctx, rt)
		refs = append(refs, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		rt = g.RefreshToken
	}
	var flights []time.Duration // written by the refresh, read after wg.Wait
	c, err := client.New(client.Config{
		Refresher: api,
		Store:     client.NewMemoryStore(srv.Issue("alice")),
		Base:      instant{},
		Now:       clock.Now,
		Jitter:    -1,
		Hooks:     client.Hooks{Refresh: func(e client.RefreshEvent) { flights = append(flights, e.Duration) }},
	})
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://api.example/v1/items", nil)
	var (
		mean, longest []time.Duration
		lat           = make([]time.Duration, n)
	)
	b.ResetTimer()
	for b.Loop() {
		clock.Advance(time.Minute) // the token has just expired
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
		)
		for i := range n {
			wg.Go(func() {
				<-start
				t0 := time.Now()
				resp, err := c.RoundTrip(req)
				lat[i] = time.Since(t0)
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Errorf("%v %v", resp, err)
				}
			})
		}
		close(start)
		wg.Wait()
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		mean = append(mean, sum/n)
		longest = append(longest, slices.Max(lat))
	}
	b.StopTimer()
	if got := c.Stats().Refreshes; got != uint64(len(mean)) {
		b.Fatalf("%d refreshes for %d storms", got, len(mean))
	}
	b.ReportMetric(float64(median(refs).Microseconds()), "refresh-µs")
	b.ReportMetric(float64(median(flights).Microseconds()), "flight-µs")
	b.ReportMetric(float64(median(mean).Microseconds()), "wait-mean-µs")
	b.ReportMetric(float64(median(longest).Microseconds()), "wait-max-µs")
	b.ReportMetric(float64(median(longest))/float64(median(flights)), "max/flight")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
