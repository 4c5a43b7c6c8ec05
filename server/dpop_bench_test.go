package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/silentrefresh/silentrefresh/dpop"
)

// BenchmarkRefreshDPoP is the cost of DPoP per refresh, end to end: one
// JSON API refresh over loopback HTTP to the real server on SQLite (a
// durable rotation), as a bearer session and as a session bound to an
// ES256 or EdDSA key, whose every refresh signs a proof in the client and
// verifies it in the server.
//
//	go test -run '^$' -bench 'RefreshDPoP' -count 6 ./server/
func BenchmarkRefreshDPoP(b *testing.B) {
	for _, v := range []struct{ name, alg string }{{"bearer", ""}, {"DPoP-ES256", dpop.AlgES256}, {"DPoP-EdDSA", dpop.AlgEdDSA}} {
		b.Run(v.name, func(b *testing.B) {
			e := newEnv(b)
			var (
				p  *prover
				rt string
			)
			if v.alg == "" {
				_, rt = e.login()
			} else {
				p = newProver(e, v.alg)
				rt = p.login().body["refreshToken"].(string)
			}
			url := e.http.URL + "/api/auth/refresh"
			hc := &http.Client{}
			b.ReportAllocs()
			for b.Loop() {
				body, _ := json.Marshal(map[string]string{"refreshToken": rt})
				req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if p != nil {
					req.Header.Set("DPoP", p.proof("POST", "/api/auth/refresh", "", ""))
				}
				resp, err := hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				var g struct {
					RefreshToken string `json:"refreshToken"`
				}
				err = json.NewDecoder(resp.Body).Decode(&g)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("refresh: %d %v", resp.StatusCode, err)
				}
				rt = g.RefreshToken
			}
		})
	}
}
