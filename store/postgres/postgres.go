// Package postgres is the PostgreSQL store: several server replicas share
// one database through it.
//
// Open connects a pgxpool, runs the embedded migrations under a session-level
// advisory lock (so replicas starting together migrate once) and returns a
// Store that implements store.Store.
//
// A refresh-token exchange is one short READ COMMITTED transaction in two
// round trips: the first locks the family row (SELECT … FOR NO KEY UPDATE)
// and then reads the token and its successor with a fresh snapshot; the
// second writes what the rotation rules decided and commits. Concurrent
// exchanges of one family queue on the row lock, so the first caller wins
// and the others see its writes. No serializable isolation is used, so there
// are no serialization failures to retry. Under load, exchanges that queue
// up meanwhile run together in one such transaction with one commit (see
// batch.go), which is what lets two cores rotate over 3,000 refresh tokens
// a second with every commit durable.
//
// Family and Client answer from memory caches that LISTEN/NOTIFY keeps
// true across replicas (cache.go, listen.go), unless Open is given
// WithoutCache.
//
// Errors caused by an unreachable database (refused or dropped connections,
// timeouts, a server shutting down or starting up) wrap store.ErrUnavailable;
// IsUnavailable reports them.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/silentrefresh/silentrefresh/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Timeouts and pool sizes. They keep every call bounded when PostgreSQL is
// slow or gone, so the server can answer 503 instead of hanging.
const (
	// opTimeout bounds one store call, retries included.
	opTimeout = 5 * time.Second
	// connectTimeout bounds dialing and authenticating one connection,
	// unless the DSN sets connect_timeout.
	connectTimeout = 3 * time.Second
	// statementTimeout is the server-side statement_timeout, unless the
	// DSN sets one.
	statementTimeout = "5s"
	// idleInTxTimeout ends sessions of a client that stopped in the middle
	// of a transaction, so that family locks cannot be held for long.
	idleInTxTimeout = "10s"
	// migrateTimeout bounds migrations, including waiting for the lock
	// held by another replica.
	migrateTimeout = 2 * time.Minute
	// retries is how many times a call is retried after a connection error
	// that is safe to retry (a stale pooled connection after a restart).
	retries = 2
)

// Store is the PostgreSQL store. It is safe for concurrent use by several
// goroutines and by several processes sharing one database.
type Store struct {
	pool   *pgxpool.Pool
	closed atomic.Bool

	// Queued exchanges and the workers that run them in batches
	// (batch.go).
	reqs    chan *exchangeReq
	quit    chan struct{}
	turn    chan struct{} // held by the batcher collecting the next batch
	workers sync.WaitGroup

	// The caches of Family and Client and their listener; nil with
	// WithoutCache.
	cache  *caches
	listen *listener
	hooks  *hooks // never nil
}

// Option changes how Open sets up a Store.
type Option func(*options)

type options struct {
	noCache          bool
	familyN, clientN int
	now              func() int64
	hooks            *hooks
}

// WithoutCache turns off the caches of Family and Client: every lookup is
// a query, and no listener connection is opened. By default the caches are
// on; they fall back to a query per lookup by themselves whenever the
// listener cannot vouch for them, so this is for comparisons and for
// deployments where a LISTEN connection per replica is unwelcome.
func WithoutCache() Option {
	return func(o *options) { o.noCache = true }
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// or
// postgresql:// URL, or a key=value connection string), applies the
// embedded migrations and returns the store.
//
// Unless the DSN says otherwise, the pool holds at most 4 connections per CPU
// and no fewer than 8 (pool_max_conns; batching keeps the busy ones few),
// connecting times out after 3 s (connect_timeout), and each session gets
// statement_timeout=5s and idle_in_transaction_session_timeout=10s. Every
// call is bounded by 5 s in all, so a database that is down or hung costs
// a quick error wrapping store.ErrUnavailable, never a hang.
//
// Unless WithoutCache is given, the store also holds one connection outside
// the pool on which it LISTENs for the invalidations of its caches.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := options{familyN: familySlots, clientN: clientSlots}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// ParseConfigError redacts the password.
		return nil, fmt.Errorf("postgres: parse DSN: %w", err)
	}
	if !dsnHas(dsn, "pool_max_conns") {
		cfg.MaxConns = int32(max(8, 4*runtime.GOMAXPROCS(0)))
	}
	if !dsnHas(dsn, "pool_max_conn_idle_time") {
		cfg.MaxConnIdleTime = 5 * time.Minute
	}
	if !dsnHas(dsn, "pool_health_check_period") {
		cfg.HealthCheckPeriod = 15 * time.Second
	}
	if !dsnHas(dsn, "connect_timeout") {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	rp := cfg.ConnConfig.RuntimeParams
	if _, ok := rp["statement_timeout"]; !ok {
		rp["statement_timeout"] = statementTimeout
	}
	if _, ok := rp["idle_in_transaction_session_timeout"]; !ok {
		rp["idle_in_transaction_session_timeout"] = idleInTxTimeout
	}
	if _, ok := rp["application_name"]; !ok {
		rp["application_name"] = "silentrefresh"
	}

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, wrap("connect", err)
	}
	s := &Store{pool: pool, hooks: o.hooks}
	if s.hooks == nil {
		s.hooks = &hooks{}
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	s.startBatchers()
	if !o.noCache {
		s.cache = newCaches(o.familyN, o.clientN, o.now)
		s.listen = startListener(cfg.ConnConfig, s.cache, s.hooks)
	}
	return s, nil
}

// dsnHas reports whether the connection string sets the named parameter.
func dsnHas(dsn, name string) bool {
	return strings.Contains(dsn, name+"=")
}

// Migrations returns the embedded SQL migrations (goose format).
func Migrations() fs.FS {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the embedded folder always exists
	}
	return sub
}

// migrate applies the embedded migrations. A session-level advisory lock
// (goose's PostgreSQL session locker) makes replicas that start together
// wait for one another instead of racing.
func (s *Store) migrate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(lockID),
		lock.WithLockTimeout(1, 120), // poll every second, for up to 2 minutes
		lock.WithUnlockTimeout(1, 30),
	)
	if err != nil {
		return fmt.Errorf("postgres: migration lock: %w", err)
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, Migrations(),
		goose.WithSessionLocker(locker),
		goose.WithTableName("silentrefresh_migrations"),
	)
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return wrap("migrate", err)
	}
	return nil
}

// lockID is the advisory lock key that guards migrations: the first 8 bytes
// of SHA-256("silentrefresh migrations").
const lockID int64 = 0x47bc023e67af18cb

// Ping reports whether the database can be reached.
func (s *Store) Ping(ctx context.Context) error {
	return s.do(ctx, "ping", true, func(ctx context.Context) error {
		return s.pool.Ping(ctx)
	})
}

// Close closes every connection of the pool. Calls made after Close fail
// with an error that wraps store.ErrUnavailable.
func (s *Store) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		if s.listen != nil {
			s.listen.close()
		}
		s.stopBatchers()
		s.pool.Close()
	}
	return nil
}

// do runs f with the per-call timeout, retrying when f failed on a
// connection error and retrying is safe: always for idempotent calls, and
// for the others only when pgx guarantees that nothing reached the server.
// Errors are wrapped as "postgres: <what>: …", and unavailability errors
// wrap store.ErrUnavailable too.
func (s *Store) do(ctx context.Context, what string, idempotent bool, f func(ctx context.Context) error) error {
	if s.closed.Load() {
		return fmt.Errorf("postgres: %s: store closed: %w", what, store.ErrUnavailable)
	}
	opCtx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var err error
	for attempt := 0; ; attempt++ {
		err = f(opCtx)
		if err == nil || opCtx.Err() != nil || !connectionLost(err) {
			break
		}
		if !isConnectError(err) {
			// An established connection broke: after a restart of
			// PostgreSQL every pooled connection is dead, so drop them
			// all at once rather than failing one request per
			// connection. Connections in use close when released.
			s.pool.Reset()
		}
		if attempt == retries {
			break
		}
		if !idempotent && !pgconn.SafeToRetry(err) {
			break
		}
	}
	if err == nil {
		return nil
	}
	if ctx.Err() == nil && opCtx.Err() != nil {
		// Our own deadline fired: the database is too slow or gone.
		return fmt.Errorf("postgres: %s: %w: %w", what, store.ErrUnavailable, err)
	}
	return wrap(what, err)
}

// wrap adds the "postgres: what" prefix and, for errors that mean the
// database cannot be reached, store.ErrUnavailable. Errors that callers
// branch on (session.ErrNotFound, user.ErrExists, …) pass through %w.
func wrap(what string, err error) error {
	if isUnavailable(err) && !errors.Is(err, store.ErrUnavailable) {
		return fmt.Errorf("postgres: %s: %w: %w", what, store.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// IsUnavailable reports whether err means that the database could not be
// reached: it wraps store.ErrUnavailable, or is a connection error from
// pgx. The server answers such errors with 503 and Retry-After.
func IsUnavailable(err error) bool {
	return errors.Is(err, store.ErrUnavailable) || isUnavailable(err)
}

// isUnavailable classifies raw errors from pgx.
func isUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if connectionLost(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"), // insufficient resources (too many connections, …)
			pgErr.Code == "57014",               // query_canceled (statement_timeout)
			pgErr.Code == "55P03":               // lock_not_available (lock_timeout)
			return true
		}
	}
	return pgconn.Timeout(err)
}

// connectionLost reports errors that mean the connection itself failed or
// the server is going away or not yet up, as opposed to an error in a
// statement.
func connectionLost(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now (starting up, shutting down, recovering)
			"08000", "08003", "08006", "08001", "08004":
			return true
		}
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, sql.ErrConnDone) || isClosedConn(err)
}

// isConnectError reports a failure to establish a new connection.
func isConnectError(err error) bool {
	var connectErr *pgconn.ConnectError
	return errors.As(err, &connectErr)
}

// isClosedConn matches pgx's "conn closed" errors, which have no exported
// type.
func isClosedConn(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "closed pool")
}

// uniqueViolation reports whether err is a unique_violation on the named
// constraint ("" for any).
func uniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" &&
		(constraint == "" || pgErr.ConstraintName == constraint)
}

// noRows reports whether err is pgx.ErrNoRows.
func noRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
