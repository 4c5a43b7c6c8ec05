package server

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// errOverloaded means a login was refused before any hashing because too
// many password checks were in flight: it is answered 503 with
// Retry-After, and never as a database failure.
var errOverloaded = errors.New("server: too many password checks in flight")

// hashGate bounds the password hashes computed at once, each of which
// holds tens of MiB and a core for tens of milliseconds: without it a
// login flood takes the memory and the CPU of every other request. A login
// takes a slot before any hashing, the dummy hash of an unknown user
// included, so both cost the same.
//
// A login that finds every slot taken waits only if the slots can be
// expected to free up in time: the logins already waiting times the mean
// time a slot is held, over the number of slots, must be under maxWait.
// Otherwise it is refused at once, at no cost to the others.
type hashGate struct {
	slots   chan struct{} // one element per hash in flight
	maxWait time.Duration

	waiting atomic.Int64 // logins waiting for a slot
	held    atomic.Int64 // moving average of the time a slot is held, in ns
}

// initialHoldEstimate is the slot time assumed before any was measured:
// argon2id with user.DefaultParams on one busy core (25 ms on an idle
// one). The estimate follows the measured times within a few logins; until
// then, an estimate too low has logins wait for a slot only to be refused
// when maxWait is over, and one too high refuses logins that could have
// waited (with the default maxWait, ten waiters per slot are admitted).
const initialHoldEstimate = 100 * time.Millisecond

func newHashGate(slots int, maxWait time.Duration) *hashGate {
	g := &hashGate{slots: make(chan struct{}, slots), maxWait: maxWait}
	g.held.Store(int64(initialHoldEstimate))
	return g
}

// acquire takes a slot, waiting at most maxWait, and returns the function
// that gives it back. It returns an error wrapping errOverloaded when no
// slot can be had in time or ctx ends first.
func (g *hashGate) acquire(ctx context.Context) (release func(), err error) {
	select {
	case g.slots <- struct{}{}:
		return g.releaser(), nil
	default:
	}
	n := g.waiting.Add(1)
	defer g.waiting.Add(-1)
	if expected := time.Duration(n * g.held.Load() / int64(cap(g.slots))); expected > g.maxWait {
		return nil, errOverloaded
	}
	t := time.NewTimer(g.maxWait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return g.releaser(), nil
	case <-t.C:
		return nil, errOverloaded
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", errOverloaded, context.Cause(ctx))
	}
}

// releaser returns the function that frees the slot just taken and folds
// the time it was held into the moving average.
func (g *hashGate) releaser() func() {
	start := time.Now()
	return func() {
		d := int64(time.Since(start))
		old := g.held.Load()
		g.held.Store(old + (d-old)/4) // a lost update only delays the estimate
		<-g.slots
	}
}
