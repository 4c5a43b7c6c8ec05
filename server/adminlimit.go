package server

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Wrong admin tokens are limited per client address: adminGuessBurst, then
// one per adminGuessEvery. While an address is over the limit, every
// request from it is answered 429 before its token is compared, the right
// token included, so that guessing there learns nothing. The limit is
// reserved before the comparison and given back when the token was right,
// so concurrent guesses cannot exceed it.
const (
	adminGuessBurst = 10
	adminGuessEvery = time.Second
	// adminGuessKeys bounds the addresses remembered; past it, those whose
	// bucket is full again are forgotten.
	adminGuessKeys = 4096
)

// guessLimiter limits wrong admin tokens per client address.
type guessLimiter struct {
	now func() time.Time
	mu  sync.Mutex               // guards m
	m   map[string]*rate.Limiter // by client address
}

func newGuessLimiter(now func() time.Time) *guessLimiter {
	return &guessLimiter{now: now, m: map[string]*rate.Limiter{}}
}

// reserve takes one guess from addr's bucket. It returns how long to wait
// when there is none (and then took nothing), or else a refund to call if
// the guess turns out right.
func (g *guessLimiter) reserve(addr string) (wait time.Duration, refund func()) {
	now := g.now()
	g.mu.Lock()
	l, ok := g.m[addr]
	if !ok {
		if len(g.m) >= adminGuessKeys {
			for k, v := range g.m {
				if v.TokensAt(now) >= adminGuessBurst {
					delete(g.m, k)
				}
			}
		}
		l = rate.NewLimiter(rate.Every(adminGuessEvery), adminGuessBurst)
		g.m[addr] = l
	}
	g.mu.Unlock()
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, nil
	}
	return 0, func() { r.CancelAt(now) }
}
