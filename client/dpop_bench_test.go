package client_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/dpop"
)

// BenchmarkRoundTripDPoP is the cost of DPoP on the Client's hot path: a
// request with a valid token through an instant base, as a bearer token and
// as a DPoP-bound token with a fresh proof (ES256, EdDSA) signed for it.
// The three take turns in slices of about the same duration (2,000 bearer
// requests, 40 DPoP ones), the order rotating, so that load from other
// processes falls on all of them alike; it reports each one's time per
// request and its ratio to bearer.
//
//	go test -run '^$' -bench 'RoundTripDPoP' -count 6 ./client/
func BenchmarkRoundTripDPoP(b *testing.B) {
	access := "eyJ" + strings.Repeat("x", 600) // the size of a typical JWT
	expiry := time.Now().Add(time.Hour)
	variants := []struct {
		name string
		alg  string // "" for bearer
		per  int    // requests per slice
		c    *client.Client
	}{{"bearer", "", 2000, nil}, {"ES256", dpop.AlgES256, 40, nil}, {"EdDSA", dpop.AlgEdDSA, 40, nil}}
	for i := range variants {
		v := &variants[i]
		tok := client.Tokens{AccessToken: access, RefreshToken: "r", Expiry: expiry}
		cfg := client.Config{Refresher: client.JSONAPI("http://127.0.0.1:1"), Base: instant{}}
		if v.alg != "" {
			key, err := dpop.GenerateKey(v.alg)
			if err != nil {
				b.Fatal(err)
			}
			cfg.DPoP, tok.TokenType = key, "DPoP"
		}
		cfg.Store = client.NewMemoryStore(tok)
		c, err := client.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		v.c = c
	}
	total := make([]time.Duration, len(variants))
	req := newBenchRequest()
	round := 0
	for b.Loop() {
		for k := range variants {
			i := (k + round) % len(variants)
			start := time.Now()
			for range variants[i].per {
				resp, err := variants[i].c.RoundTrip(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("%v %v", resp, err)
				}
				if variants[i].alg != "" && resp.Request.Header.Get("DPoP") == "" {
					b.Fatal("no proof sent")
				}
			}
			total[i] += time.Since(start)
		}
		round++
	}
	perOp := make([]float64, len(variants))
	for i, v := range variants {
		perOp[i] = float64(total[i].Nanoseconds()) / float64(round*v.per)
		b.ReportMetric(perOp[i], v.name+"-ns/op")
		if i > 0 {
			b.ReportMetric(perOp[i]/perOp[0], v.name+"/bearer")
		}
	}
	b.ReportMetric(0, "ns/op")
}
