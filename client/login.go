package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/silentrefresh/silentrefresh/internal/clock"
)

// maxLoginAttempts bounds how often a login refused for overload is tried.
const maxLoginAttempts = 20

// loginOverloaded reports whether err is a server's "too busy, retry
// shortly": a 503 (the login was refused before any password was checked,
// so trying again is safe and cannot count as a failed guess).
func loginOverloaded(err error) (time.Duration, bool) {
	var re *RetrieveError
	if !errors.As(err, &re) || re.StatusCode != http.StatusServiceUnavailable {
		return 0, false
	}
	return re.RetryAfter, true
}

// retryLogin calls login until it succeeds, fails for another reason than
// overload, ctx ends, or maxLoginAttempts is reached. Between attempts it
// waits what the server's Retry-After asks (at least 100 ms), with jitter
// so that a crowd refused together does not return together. A 429 (too
// many failed logins) is not retried: waiting it out is the caller's call.
func retryLogin(ctx context.Context, login func(context.Context) (Tokens, error)) (Tokens, error) {
	for attempt := 1; ; attempt++ {
		t, err := login(ctx)
		after, again := loginOverloaded(err)
		if !again || attempt == maxLoginAttempts {
			return t, err
		}
		wait := max(after, 100*time.Millisecond)
		wait += rand.N(wait/2 + 1)
		if clock.Sleep(ctx, wait) != nil {
			return t, err
		}
	}
}
