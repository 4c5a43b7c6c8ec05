package server

import (
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// LoginLimit bounds the failed logins of one key (a username, a username
// and client address, a client address): Burst in a row, then one per
// Every.
type LoginLimit struct {
	Burst int
	Every time.Duration
}

func (l LoginLimit) validate(name string) error {
	if l.Burst < 1 || l.Every <= 0 {
		return fmt.Errorf("server: %s %+v must have a positive burst and interval", name, l)
	}
	return nil
}

// The limits a login attempt is counted against.
const (
	limitUser    = "user"    // one username, from anywhere
	limitClient  = "client"  // one username from one client address
	limitAddress = "address" // one client address, any username
)

// loginLimiter holds the failed-login limits. An attempt reserves a token
// of each of its three keys when it starts, before any hashing, so that
// concurrent guesses cannot overrun a limit that would only be counted
// once they are answered. A failed attempt spends its tokens; any other
// outcome (a success, or an attempt that tested no password) releases
// them. So a user who types the right password is never slowed down by
// the limits, and an attacker guessing an account is stopped after Burst
// guesses, however many they send at once.
type loginLimiter struct {
	now func() time.Time

	mu     sync.Mutex // guards the buckets of the three limits
	limits [3]keyedLimit
}

// keyedLimit is one limit with a bucket per key.
type keyedLimit struct {
	name  string
	limit LoginLimit
	keys  map[string]*bucket
}

// bucket is one key's token bucket and the attempts in flight that have
// reserved one of its tokens each.
type bucket struct {
	lim      *rate.Limiter
	inFlight int
}

// maxLimiterKeys bounds the memory of each limit; past it, buckets that
// have refilled and have no attempt in flight are dropped.
const maxLimiterKeys = 100_000

func newLoginLimiter(user, client, address LoginLimit, now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, limits: [3]keyedLimit{
		{name: limitUser, limit: user, keys: make(map[string]*bucket)},
		{name: limitClient, limit: client, keys: make(map[string]*bucket)},
		{name: limitAddress, limit: address, keys: make(map[string]*bucket)},
	}}
}

// reservation is the tokens one attempt holds.
type reservation struct {
	l       *loginLimiter
	buckets [3]*bucket
}

// reserve reserves one token of each key of the attempt by username from
// addr. When a key has none to spare it reserves nothing and returns the
// limit that refused and how long to wait.
func (l *loginLimiter) reserve(username, addr string) (*reservation, string, time.Duration) {
	keys := [3]string{username, username + "\x00" + addr, addr}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	refused := ""
	for i := range l.limits {
		if d := l.limits[i].waitLocked(keys[i], now); d > wait {
			wait, refused = d, l.limits[i].name
		}
	}
	if wait > 0 {
		return nil, refused, wait
	}
	r := &reservation{l: l}
	for i := range l.limits {
		b := l.limits[i].bucketLocked(keys[i], now)
		b.inFlight++
		r.buckets[i] = b
	}
	return r, "", 0
}

// fail spends the reserved tokens: the attempt tested a wrong password.
func (r *reservation) fail() {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	now := r.l.now()
	for _, b := range r.buckets {
		b.inFlight--
		b.lim.AllowN(now, 1)
	}
}

// release gives the reserved tokens back unspent.
func (r *reservation) release() {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	for _, b := range r.buckets {
		b.inFlight--
	}
}

// waitLocked returns how long key must wait until one of its tokens is
// neither spent nor reserved, zero if one is free now. l.mu must be held.
func (k *keyedLimit) waitLocked(key string, now time.Time) time.Duration {
	b, ok := k.keys[key]
	if !ok {
		return 0
	}
	short := float64(b.inFlight+1) - b.lim.TokensAt(now)
	if short <= 0 {
		return 0
	}
	if b.inFlight+1 > k.limit.Burst {
		// Only attempts ending frees a token: they end within a request
		// timeout, and the client is told to come back in a second.
		return time.Second
	}
	return time.Duration(short * float64(k.limit.Every))
}

// bucketLocked returns the bucket of key, made full if it had none.
func (k *keyedLimit) bucketLocked(key string, now time.Time) *bucket {
	b, ok := k.keys[key]
	if !ok {
		if len(k.keys) >= maxLimiterKeys {
			k.pruneLocked(now)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Every(k.limit.Every), k.limit.Burst)}
		k.keys[key] = b
	}
	return b
}

// pruneLocked drops buckets that are full again and have no attempt in
// flight: they hold no memory of failures worth keeping.
func (k *keyedLimit) pruneLocked(now time.Time) {
	for key, b := range k.keys {
		if b.inFlight == 0 && b.lim.TokensAt(now) >= float64(k.limit.Burst) {
			delete(k.keys, key)
		}
	}
}

// seconds rounds a wait up to whole seconds for Retry-After.
func seconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
