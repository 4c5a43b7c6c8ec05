package clock

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestFake(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	c := NewFake(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Fatalf("Now = %v, want %v", got, t0)
	}
	c.Advance(90 * time.Second)
	if got, want := c.Now(), t0.Add(90*time.Second); !got.Equal(want) {
		t.Errorf("after Advance, Now = %v, want %v", got, want)
	}
	c.Set(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Errorf("after Set, Now = %v, want %v", got, t0)
	}
}

// The zero Fake runs with the real time, shifted by Advance.
func TestFakeZeroRunsWithRealTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c Fake
		if got := c.Now(); !got.Equal(time.Now()) {
			t.Fatalf("zero Fake reads %v, real time is %v", got, time.Now())
		}
		c.Advance(time.Hour)
		time.Sleep(time.Minute)
		if got, want := c.Now(), time.Now().Add(time.Hour); !got.Equal(want) {
			t.Errorf("Now = %v, want %v", got, want)
		}
	})
}

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := Sleep(context.Background(), time.Minute); err != nil || time.Since(start) != time.Minute {
			t.Fatalf("Sleep = %v after %v, want nil after 1m", err, time.Since(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start = time.Now()
		if err := Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Errorf("Sleep past the deadline = %v after %v, want DeadlineExceeded after 1s", err, time.Since(start))
		}
		if err := Sleep(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Sleep(0) on an ended context = %v", err)
		}
		if err := SleepUntil(context.Background(), time.Now().Add(-time.Second)); err != nil {
			t.Errorf("SleepUntil(the past) = %v", err)
		}
	})
}
