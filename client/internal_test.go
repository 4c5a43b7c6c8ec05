package client

import (
	"encoding/json"
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// The refresh window is proportional to the lifetime, clamped, never more
// than half of it, and the expiry margin keeps a token from being sent in
// its last moments.
func TestSchedule(t *testing.T) {
	tests := []struct {
		name                    string
		cfg                     Config
		life                    time.Duration
		wantRefresh, wantExpire time.Duration // before expiry
	}{
		{"30m token", Config{}, 30 * time.Minute, 5 * time.Minute, 10 * time.Second},
		{"10m token", Config{}, 10 * time.Minute, 2 * time.Minute, 10 * time.Second},
		{"1m token", Config{}, time.Minute, 12 * time.Second, 6 * time.Second},
		{"10s token: min window", Config{}, 10 * time.Second, 5 * time.Second, time.Second},
		{"2s token: half the lifetime", Config{}, 2 * time.Second, time.Second, 200 * time.Millisecond},
		{"fixed window", Config{RefreshWindow: time.Minute}, time.Hour, time.Minute, 10 * time.Second},
		{"fixed window over half", Config{RefreshWindow: time.Hour}, time.Hour, 30 * time.Minute, 10 * time.Second},
		{"window under margin", Config{RefreshWindow: time.Second, ExpiryMargin: 5 * time.Second}, time.Hour, 5 * time.Second, 5 * time.Second},
		{"no margin", Config{ExpiryMargin: -1}, time.Hour, 5 * time.Minute, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Jitter = -1
			c := &Client{cfg: tt.cfg}
			exp := t0.Add(tt.life)
			st := c.newState(Tokens{AccessToken: "a", Expiry: exp}, 1, t0)
			if got := exp.Sub(st.refreshAt); got != tt.wantRefresh {
				t.Errorf("refresh %v before expiry, want %v", got, tt.wantRefresh)
			}
			if got := exp.Sub(st.expireAt); got != tt.wantExpire {
				t.Errorf("expired %v before expiry, want %v", got, tt.wantExpire)
			}
		})
	}
	c := &Client{}
	if st := c.newState(Tokens{AccessToken: "a"}, 1, t0); !st.refreshAt.Equal(never) || !st.usable(t0.Add(1000*time.Hour)) {
		t.Error("a token without expiry is refreshed or expires")
	}
	if st := c.newState(Tokens{AccessToken: "a", Expiry: t0.Add(-time.Second)}, 1, t0); st.usable(t0) {
		t.Error("an expired token is usable")
	}
	if st := c.newState(Tokens{}, 1, t0); st.err == nil {
		t.Error("no tokens is not an error state")
	}
}

// Jitter only ever widens the window (refreshing earlier, never later), by
// at most the configured fraction, and spreads clients apart.
func TestScheduleJitter(t *testing.T) {
	c := &Client{cfg: Config{Jitter: 0.5}}
	exp := t0.Add(10 * time.Minute)
	seen := map[time.Time]bool{}
	for range 200 {
		st := c.newState(Tokens{AccessToken: "a", Expiry: exp}, 1, t0)
		w := exp.Sub(st.refreshAt)
		if w < 2*time.Minute || w > 3*time.Minute {
			t.Fatalf("window %v outside [2m, 3m]", w)
		}
		seen[st.refreshAt] = true
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct refresh times in 200", len(seen))
	}
}

func TestBackoff(t *testing.T) {
	c := &Client{cfg: Config{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}}
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		want *= time.Millisecond
		for range 50 {
			if d := c.backoff(n); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"7", 7 * time.Second},
		{" 12 ", 12 * time.Second},
		{"999999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestBearerRejected(t *testing.T) {
	tests := []struct {
		challenges []string
		want       bool
	}{
		{nil, true},
		{[]string{`Bearer error="invalid_token"`}, true},
		{[]string{`Bearer error="invalid_token", error_description="expired"`}, true},
		{[]string{`Bearer realm="x", error=invalid_token`}, true},
		{[]string{`bearer`}, true},
		{[]string{`Bearer realm="x"`}, true},
		{[]string{`Bearer error="insufficient_scope"`}, false},
		{[]string{`Bearer error="invalid_request"`}, false},
		{[]string{`Basic realm="x"`}, false},
		{[]string{`Basic realm="x"`, `Bearer error="invalid_token"`}, true},
		{[]string{`DPoP error="invalid_token"`}, false},
	}
	for _, tt := range tests {
		h := http.Header{}
		for _, c := range tt.challenges {
			h.Add("WWW-Authenticate", c)
		}
		if got := bearerRejected(h); got != tt.want {
			t.Errorf("bearerRejected(%q) = %v, want %v", tt.challenges, got, tt.want)
		}
	}
}

func TestSeconds(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{`3600`, time.Hour, false},
		{`"3600"`, time.Hour, false},
		{`1.5`, 1500 * time.Millisecond, false},
		{`null`, 0, false},
		{`-1`, 0, true},
		{`"abc"`, 0, true},
		{`1e300`, 0, true},
	}
	for _, tt := range tests {
		var s seconds
		err := json.Unmarshal([]byte(tt.in), &s)
		if (err != nil) != tt.wantErr || (err == nil && time.Duration(s) != tt.want) {
			t.Errorf("%s: got %v, %v; want %v, error %v", tt.in, time.Duration(s), err, tt.want, tt.wantErr)
		}
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "7", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		if d := retryAfter(s, now); d < 0 || d > 24*time.Hour {
			t.Fatalf("retryAfter(%q) = %v", s, d)
		}
	})
}

func FuzzBearerRejected(f *testing.F) {
	for _, s := range []string{`Bearer error="invalid_token"`, `Basic`, `Bearer error=`, `Bearer error="`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		bearerRejected(http.Header{"Www-Authenticate": {s}})
	})
}

// FuzzDecodeGrant feeds token endpoint answers to both decoders: no panic,
// and a decoded lifetime is never negative.
func FuzzDecodeGrant(f *testing.F) {
	f.Add(`{"access_token":"a","expires_in":3600,"refresh_token":"r"}`)
	f.Add(`{"accessToken":"a","expiresIn":"60","refreshExpiresIn":1.5}`)
	f.Add(`{"expires_in":-1}`)
	f.Fuzz(func(t *testing.T, s string) {
		var g jsonGrant
		if json.Unmarshal([]byte(s), &g) == nil && (g.ExpiresIn < 0 || g.RefreshExpiresIn < 0) {
			t.Fatalf("negative lifetime from %q", s)
		}
	})
}

// Requests read no clock until nearLead before the refresh is due: a timer
// of the real clock says when. A state that is due at once (no tokens, an
// expired token) is near from the start, and an injected clock, which no
// timer follows, is read on every request.
func TestNear(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &Client{cfg: Config{Jitter: -1}, now: time.Now}
		now := time.Now()
		st := c.newState(Tokens{AccessToken: "a", Expiry: now.Add(10 * time.Minute)}, 1, now)
		c.publish(st)
		if st.near.Load() || c.due(st) {
			t.Fatal("a fresh token is near")
		}
		time.Sleep(st.refreshAt.Sub(now) - nearLead - time.Nanosecond)
		synctest.Wait()
		if st.near.Load() {
			t.Fatal("near before nearLead")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if !st.near.Load() || c.due(st) {
			t.Fatalf("at refreshAt − nearLead: near %v, due %v; want near, not due", st.near.Load(), c.due(st))
		}
		time.Sleep(nearLead)
		if !c.due(st) {
			t.Fatal("not due at refreshAt")
		}

		for name, tok := range map[string]Tokens{
			"no tokens":          {},
			"refresh token only": {RefreshToken: "r"},
			"expired":            {AccessToken: "a", Expiry: time.Now().Add(-time.Second)},
		} {
			st := c.newState(tok, 2, time.Now())
			c.publish(st)
			if !c.due(st) {
				t.Errorf("%s: not due at once", name)
			}
		}
		never := c.newState(Tokens{AccessToken: "a"}, 3, time.Now())
		c.publish(never)
		if never.near.Load() || never.timer != nil {
			t.Error("a token without expiry is near or has a timer")
		}

		fake := &Client{cfg: Config{Now: time.Now}, now: time.Now}
		st = fake.newState(Tokens{AccessToken: "a", Expiry: time.Now().Add(time.Hour)}, 1, time.Now())
		fake.publish(st)
		if !st.near.Load() || st.timer != nil {
			t.Error("with an injected clock the state is not near from the start")
		}
	})
}
