package client_test

import (
	"crypto"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/dpop"
)

// BenchmarkRoundTripDPoP is the cost of DPoP on the Client's hot path: a
// request with a valid token through an instant base, as a bearer token
// and as a DPoP-bound token with a fresh proof (ES256, EdDSA) signed for
// it, 32 goroutines at once.
//
//	go test -run '^$' -bench 'RoundTripDPoP' -count 6 ./client/
func BenchmarkRoundTripDPoP(b *testing.B) {
	access := "eyJ" + strings.Repeat("x", 600) // the size of a typical JWT
	expiry := time.Now().Add(time.Hour)
	for _, v := range []struct {
		name string
		alg  string // "" for bearer
	}{{"bearer", ""}, {"DPoP-ES256", dpop.AlgES256}, {"DPoP-EdDSA", dpop.AlgEdDSA}} {
		b.Run(v.name, func(b *testing.B) {
			cfg := client.Config{
				Refresher: client.JSONAPI("http://127.0.0.1:1"),
				Store:     client.NewMemoryStore(client.Tokens{AccessToken: access, RefreshToken: "r", Expiry: expiry}),
				Base:      instant{},
			}
			if v.alg != "" {
				key, err := dpop.GenerateKey(v.alg)
				if err != nil {
					b.Fatal(err)
				}
				cfg.DPoP = crypto.Signer(key)
				cfg.Store = client.NewMemoryStore(client.Tokens{AccessToken: access, RefreshToken: "r", Expiry: expiry, TokenType: "DPoP"})
			}
			c, err := client.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetParallelism(parallelism())
			b.RunParallel(func(pb *testing.PB) {
				req := newBenchRequest()
				for pb.Next() {
					resp, err := c.RoundTrip(req)
					if err != nil || resp.StatusCode != http.StatusOK {
						b.Fatalf("%v %v", resp, err)
					}
					if v.alg != "" && resp.Request.Header.Get("DPoP") == "" {
						b.Fatal("no proof sent")
					}
				}
			})
		})
	}
}
