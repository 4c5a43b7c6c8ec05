// Package clock holds the project's one test clock and its one
// context-aware sleep, so that neither is written again in each package.
package clock

import (
	"context"
	"sync"
	"time"
)

// Sleep waits for d, or until ctx is done, whichever comes first. It
// returns ctx.Err() if ctx ended first (or had already ended), nil
// otherwise. A d of zero or less returns at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SleepUntil is Sleep until the instant t.
func SleepUntil(ctx context.Context, t time.Time) error {
	return Sleep(ctx, time.Until(t))
}

// Fake is a clock that tests move by hand, for the Now fields of
// session.Config, client.Config, token.VerifierConfig and the like. It is
// safe for concurrent use. A Fake from NewFake stands still at its time
// until moved; the zero Fake runs with the real time, shifted by whatever
// Advance added.
type Fake struct {
	mu     sync.Mutex    // guards at and offset
	at     time.Time     // the time it stands at; zero: the real time
	offset time.Duration // added by Advance to the real time
}

// NewFake returns a Fake that reads t until it is moved.
func NewFake(t time.Time) *Fake { return &Fake{at: t} }

// Now returns the clock's time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() {
		return time.Now().Add(c.offset)
	}
	return c.at
}

// Advance moves the clock forward by d (back, if d is negative).
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() {
		c.offset += d
		return
	}
	c.at = c.at.Add(d)
}

// Set makes the clock stand at t.
func (c *Fake) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at, c.offset = t, 0
}
