package postgres

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The listener keeps the caches (cache.go) true. It holds one connection
// of its own, outside the pool, that LISTENs on invalidateChannel, where
// the triggers of migration 00005 announce every committed change to a
// family or a client, and forgets what each notification names.
//
// The caches are usable only while the listener is healthy. Every
// heartbeat it sends a notification to itself on the same channel and
// waits for it to come back: PostgreSQL delivers notifications in commit
// order, so once its own heartbeat is back, every change committed before
// the heartbeat was sent has been delivered and forgotten. The caches are
// then vouched for until healthWindow after the heartbeat was sent; a
// heartbeat that does not come back in time (a hung connection, a pooler
// that does not carry LISTEN) lets that run out, and every lookup goes to
// the database again. A change committed on another replica is therefore
// seen here when its notification arrives, and never later than
// healthWindow after its commit.
//
// After any error the listener drops the connection, marks the caches
// unusable at once and reconnects with backoff; on the new connection it
// LISTENs, then clears both caches (notifications may have been missed),
// and only then, with its first heartbeat back, vouches again.
const (
	// invalidateChannel is the channel of the triggers and heartbeats.
	invalidateChannel = "silentrefresh_invalidate"
	// heartbeat is the interval of the listener's heartbeats.
	heartbeat = 250 * time.Millisecond
	// healthWindow is how long after a heartbeat was sent its return
	// vouches for the caches: one lost or late heartbeat is tolerated.
	healthWindow = 2 * heartbeat
	// Reconnection backoff, doubled after every failed attempt.
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// schemaSQL names the schema of the families table the store uses: the
// prefix of the notifications meant for it.
const schemaSQL = `SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'families'::regclass`

// listener is the goroutine that LISTENs for invalidations.
type listener struct {
	cfg   *pgx.ConnConfig
	c     *caches
	hooks *hooks
	stop  context.CancelFunc
	done  chan struct{}
	// pid is the backend process ID of the current connection, 0
	// between connections.
	pid atomic.Uint32

	// Used by the listener's goroutine only: run, and onNotification,
	// which pgx calls on that goroutine while it reads the connection.
	prefix string // "<schema>|"
	seq    uint64 // heartbeats sent on this connection
	expect string // the payload of the last heartbeat sent, after prefix
	sentAt int64  // c.now() when it was sent
	up     bool   // a heartbeat came back on this connection
}

// hooks let tests observe and interleave the cache's machinery. All are
// optional; the zero value does nothing.
type hooks struct {
	// event is called by the listener: "up" (first heartbeat back on a
	// connection), "beat" (every heartbeat back, after "up"), "down" (the
	// connection failed; detail is the error),
	// "notify" (a notification for this store was applied; detail is its
	// payload after the schema prefix).
	event func(kind, detail string)
	// beforeConnect is called before each connection attempt.
	beforeConnect func(ctx context.Context)
	// beforeBeat is called before each heartbeat.
	beforeBeat func(ctx context.Context)
	// afterQuery is called by Family and Client between their query and
	// the fill ("f" or "c", and the key).
	afterQuery func(kind, key string)
	// beforeStore is called by a fill that passed its first check of
	// the generation, just before it stores its entry.
	beforeStore func()
}

// startListener starts the listener on a connection configured like the
// pool's.
func startListener(pool *pgx.ConnConfig, c *caches, h *hooks) *listener {
	cfg := pool.Copy()
	rp := cfg.RuntimeParams
	rp["application_name"] = rp["application_name"] + " listener"
	// Heartbeats are commits of their own; they need no flush to disk.
	rp["synchronous_commit"] = "off"
	if h == nil {
		h = &hooks{}
	}
	l := &listener{cfg: cfg, c: c, hooks: h, done: make(chan struct{})}
	cfg.OnNotification = l.onNotification
	ctx, stop := context.WithCancel(context.Background())
	l.stop = stop
	go l.run(ctx)
	return l
}

// close stops the listener and waits for it.
func (l *listener) close() {
	l.stop()
	<-l.done
}

func (l *listener) event(kind, detail string) {
	if l.hooks.event != nil {
		l.hooks.event(kind, detail)
	}
}

func (l *listener) run(ctx context.Context) {
	defer close(l.done)
	defer l.c.down()
	backoff := minBackoff
	for {
		if l.hooks.beforeConnect != nil {
			l.hooks.beforeConnect(ctx)
		}
		err := l.session(ctx)
		l.c.down()
		l.pid.Store(0)
		if l.up {
			backoff = minBackoff
		}
		l.up, l.prefix = false, ""
		if ctx.Err() != nil {
			return
		}
		l.event("down", err.Error())
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session runs one connection until it fails.
func (l *listener) session(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	l.pid.Store(conn.PgConn().PID())
	var schema string
	if err := conn.QueryRow(ctx, schemaSQL).Scan(&schema); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+invalidateChannel); err != nil {
		return err
	}
	l.prefix, l.seq = schema+"|", 0
	// From here on every change is announced to this connection; what
	// the caches hold from before may have missed its announcement.
	l.c.clearAll()
	for {
		if err := l.beat(ctx, conn); err != nil {
			return err
		}
		next := time.Now().Add(heartbeat)
		for {
			wctx, cancel := context.WithDeadline(ctx, next)
			_, err := conn.WaitForNotification(wctx)
			cancel()
			if err == nil {
				continue // onNotification has applied it
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if wctx.Err() != nil && !conn.IsClosed() {
				break // time for the next heartbeat
			}
			return err
		}
	}
}

// beat sends a heartbeat: a notification to itself. It normally comes back
// before the statement's answer.
func (l *listener) beat(ctx context.Context, conn *pgx.Conn) error {
	if l.hooks.beforeBeat != nil {
		l.hooks.beforeBeat(ctx)
	}
	l.seq++
	l.expect = "hb:" + strconv.FormatUint(uint64(conn.PgConn().PID()), 10) + ":" + strconv.FormatUint(l.seq, 10)
	l.sentAt = l.c.now()
	bctx, cancel := context.WithTimeout(ctx, healthWindow)
	defer cancel()
	_, err := conn.Exec(bctx, "SELECT pg_notify($1, $2)", invalidateChannel, l.prefix+l.expect)
	return err
}

// onNotification applies one notification. pgx calls it on the
// listener's goroutine, whichever call is reading the connection.
func (l *listener) onNotification(_ *pgconn.PgConn, n *pgconn.Notification) {
	rest, ok := strings.CutPrefix(n.Payload, l.prefix)
	if !ok || l.prefix == "" {
		return // another schema's
	}
	switch {
	case rest == l.expect:
		l.c.vouch(l.sentAt + int64(healthWindow))
		if !l.up {
			l.up = true
			l.event("up", "")
		}
		l.event("beat", "")
		return
	case strings.HasPrefix(rest, "hb:"):
		return // another listener's heartbeat
	case strings.HasPrefix(rest, "f:"):
		l.c.forgetFamily(rest[2:])
	case strings.HasPrefix(rest, "c:"):
		l.c.forgetClient(rest[2:])
	default: // "*", or anything this version does not know
		l.c.clearAll()
	}
	l.event("notify", rest)
}
