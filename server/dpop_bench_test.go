package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/dpop"
)

// BenchmarkRefreshDPoP is the cost of DPoP per refresh, end to end: JSON
// API refreshes over loopback HTTP to the real server on SQLite (each a
// durable rotation), of a bearer session and of sessions bound to an ES256
// and an EdDSA key, whose every refresh signs a proof in the client and
// verifies it in the server. The three take turns in short slices, the
// order rotating; it reports each one's time per refresh and its ratio to
// bearer.
//
//	go test -run '^$' -bench 'RefreshDPoP' -count 6 ./server/
func BenchmarkRefreshDPoP(b *testing.B) {
	const per = 5
	e := newEnv(b)
	type session struct {
		p  *prover // nil for bearer
		rt string
	}
	var sessions []*session
	for _, alg := range []string{"", dpop.AlgES256, dpop.AlgEdDSA} {
		s := &session{}
		if alg == "" {
			_, s.rt = e.login()
		} else {
			s.p = newProver(e, alg)
			s.rt = s.p.login().body["refreshToken"].(string)
		}
		sessions = append(sessions, s)
	}
	url := e.http.URL + "/api/auth/refresh"
	hc := &http.Client{}
	refresh := func(s *session) {
		body, _ := json.Marshal(map[string]string{"refreshToken": s.rt})
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if s.p != nil {
			req.Header.Set("DPoP", s.p.proof("POST", "/api/auth/refresh", "", ""))
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
		s.rt = g.RefreshToken
	}
	total := make([]time.Duration, len(sessions))
	round := 0
	for b.Loop() {
		for j := range sessions {
			i := (j + round) % len(sessions)
			start := time.Now()
			for range per {
				refresh(sessions[i])
			}
			total[i] += time.Since(start)
		}
		round++
	}
	names := []string{"bearer", "ES256", "EdDSA"}
	for i, n := range names {
		b.ReportMetric(float64(total[i].Nanoseconds())/float64(round*per), n+"-ns/op")
		if i > 0 {
			b.ReportMetric(float64(total[i])/float64(total[0]), n+"/bearer")
		}
	}
	b.ReportMetric(0, "ns/op")
}
