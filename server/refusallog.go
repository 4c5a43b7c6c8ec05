package server

import (
	"cmp"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// refusalLogInterval is how often the rate-limited logins are logged, as
// one line per key with a count.
const refusalLogInterval = 10 * time.Second

// maxRefusalKeys bounds the keys counted in one interval; the refusals of
// further keys are counted together.
const maxRefusalKeys = 1000

// refusalLog aggregates the logins refused by the rate limits: a client
// hammering the login endpoint costs one log line per key and interval,
// not one per request.
type refusalLog struct {
	log   *slog.Logger
	every time.Duration
	// msg is the message of its lines, "logins rate limited" if empty;
	// limit and user the names of the attributes of refusalKey.limit and
	// .user in them, "limit" and "user" if empty.
	msg, limit, user string

	mu        sync.Mutex // guards counts and scheduled
	counts    map[refusalKey]int
	scheduled bool // a flush is due
}

// refusalKey is what one log line counts: the limit that refused, the
// user's tag (never the username) and the client address.
type refusalKey struct {
	limit, user, remote string
}

// note counts one refusal, and schedules a flush if none is due.
func (l *refusalLog) note(k refusalKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = make(map[refusalKey]int)
	}
	if _, ok := l.counts[k]; !ok && len(l.counts) >= maxRefusalKeys {
		k = refusalKey{limit: "other", user: "other", remote: "other"}
	}
	l.counts[k]++
	if !l.scheduled {
		l.scheduled = true
		time.AfterFunc(l.every, l.flush)
	}
}

// flush logs the counts of the interval that ended, one line per key.
func (l *refusalLog) flush() {
	l.mu.Lock()
	counts := l.counts
	l.counts, l.scheduled = nil, false
	l.mu.Unlock()
	keys := make([]refusalKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b refusalKey) int {
		return cmp.Or(cmp.Compare(a.limit, b.limit), cmp.Compare(a.user, b.user), cmp.Compare(a.remote, b.remote))
	})
	msg, limit, user := cmp.Or(l.msg, "logins rate limited"), cmp.Or(l.limit, "limit"), cmp.Or(l.user, "user")
	for _, k := range keys {
		l.log.Warn(msg, limit, k.limit, user, k.user, "remote", k.remote,
			"count", counts[k], "interval", l.every)
	}
}
