package server

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// LoginLimit bounds failed logins: each key (a username, a client address)
// may fail Burst times in a row, then once per Every.
type LoginLimit struct {
	Burst int
	Every time.Duration
}

// failureLimiter counts failed logins per key. Only failures spend tokens,
// so a user who types the right password is never slowed down by the limit
// on their address, and an attacker guessing one account is stopped after
// Burst guesses.
type failureLimiter struct {
	limit LoginLimit
	now   func() time.Time

	mu   sync.Mutex // guards keys
	keys map[string]*rate.Limiter
}

// maxLimiterKeys bounds the memory of a failureLimiter; past it, limiters
// that have refilled are dropped.
const maxLimiterKeys = 100_000

func newFailureLimiter(l LoginLimit, now func() time.Time) *failureLimiter {
	return &failureLimiter{limit: l, now: now, keys: make(map[string]*rate.Limiter)}
}

// retryAfter returns how long the key must wait before another attempt, or
// zero when it may try now.
func (f *failureLimiter) retryAfter(key string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	lim, ok := f.keys[key]
	if !ok {
		return 0
	}
	now := f.now()
	if lim.TokensAt(now) >= 1 {
		return 0
	}
	r := lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d
}

// fail spends one token of the key.
func (f *failureLimiter) fail(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	lim, ok := f.keys[key]
	if !ok {
		if len(f.keys) >= maxLimiterKeys {
			f.pruneLocked()
		}
		lim = rate.NewLimiter(rate.Every(f.limit.Every), f.limit.Burst)
		f.keys[key] = lim
	}
	lim.AllowN(f.now(), 1)
}

// pruneLocked drops limiters that are full again: they hold no memory of
// failures worth keeping.
func (f *failureLimiter) pruneLocked() {
	now := f.now()
	for k, lim := range f.keys {
		if lim.TokensAt(now) >= float64(f.limit.Burst) {
			delete(f.keys, k)
		}
	}
}

// seconds rounds a wait up to whole seconds for Retry-After.
func seconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
