// Package sqlite is the embedded store: one SQLite file, in pure Go
// (modernc.org/sqlite, no cgo), safe for several goroutines and several
// processes sharing the file.
//
// The database runs in WAL mode with synchronous=FULL, foreign keys on and a
// busy timeout of 10s. Writes go through one connection whose transactions
// all begin IMMEDIATE, so a read-then-write transaction (an Exchange) holds
// the write lock from its first read; reads go through a separate pool of
// read-only connections, which WAL lets run beside the writer. Concurrent
// exchanges, logins and revocations are committed in groups: one
// transaction, one savepoint per request, one fsync per group (batch.go).
//
// Durability: a transaction that Exchange, CreateFamilyCapped or RevokeFamily
// reports as committed survives the process being killed (kill -9) and, with
// synchronous=FULL, also the machine losing power, since every commit syncs
// the write-ahead log. synchronous=NORMAL would survive kill -9 too but may
// lose the last commits on power loss; a lost revocation would bring a
// logged-out or stolen session back, which is worth an fsync per write.
//
// Open runs the embedded goose migrations; a lock file next to the database
// (PATH.migrate-lock) keeps processes that open a new file at the same time
// from migrating it twice.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/pressly/goose/v3"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/silentrefresh/silentrefresh/internal/clock"
	"github.com/silentrefresh/silentrefresh/store"
)

// BusyTimeout is how long a statement waits for a lock held by another
// connection or process before it fails with an error wrapping
// store.ErrUnavailable.
const BusyTimeout = 10 * time.Second

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a store.Store on one SQLite file. It is safe for concurrent use
// by several goroutines, and by several processes opening the same file.
type Store struct {
	path string
	// w is the writer: a pool of exactly one connection whose transactions
	// begin IMMEDIATE. Every write goes through it, so writers of this
	// process queue in the pool instead of spinning on the busy timeout.
	w *sql.DB
	// r is the reader pool: read-only connections for lookups that write
	// nothing. It is w itself when the options ask for no readers.
	r *sql.DB
	// ws and rs are the prepared statements of w and r.
	ws, rs *stmts
	// c commits the writes of the request path in groups (batch.go).
	c *committer
	// chains are the chains the committer remembers (chaincache.go);
	// outsideWrites counts the writer's statements outside the batches.
	chains        *chainCache
	outsideWrites outsideWrites
	// families remembers families read while no commit happened
	// (familycache.go); nil if the shared-memory file cannot be read.
	families *familyCache
	clients  *clientCache // answers of Client (clientcache.go); nil like families
}

var _ store.Store = (*Store)(nil)

// options tune Open for the benchmarks that justify the defaults.
type options struct {
	synchronous string      // "FULL" or "NORMAL"
	writers     int         // size of the writer pool: 1 in production
	readers     int         // size of the reader pool; 0: no separate readers, reads use the writer pool
	onBatch     func(n int) // if set (by tests), called with the size of each batch before it runs
}

func defaultOptions() options {
	return options{synchronous: "FULL", writers: 1, readers: max(4, runtime.GOMAXPROCS(0))}
}

// Open opens the SQLite database at path, creating it and its parent
// folders if missing, and brings its schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, defaultOptions())
}

func open(ctx context.Context, path string, o options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: open: empty path")
	}
	if strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, fmt.Errorf("sqlite: open %q: want a file path, not a URI or :memory:", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: open: create folder: %w", err)
	}
	// The file holds signing keys and password hashes: create it readable
	// by its owner only. SQLite gives its -wal and -shm files the same mode.
	if f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("sqlite: open: create file: %w", err)
	}

	common := []string{
		fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()),
		"foreign_keys(1)",
	}
	w, err := sql.Open("sqlite", dsn(abs, "immediate", append(common,
		"journal_mode(WAL)",
		"synchronous("+o.synchronous+")",
	)...))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	w.SetMaxOpenConns(o.writers)
	w.SetMaxIdleConns(o.writers)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	s := &Store{path: abs, w: w, r: w}

	// The first connection sets WAL mode, which is kept in the file, before
	// any reader opens it.
	if err := pingWhileBusy(ctx, w); err != nil {
		w.Close()
		return nil, wrap("open", err)
	}
	if err := migrate(ctx, w, abs); err != nil {
		w.Close()
		return nil, err
	}
	if o.readers > 0 {
		r, err := sql.Open("sqlite", dsn(abs, "", append(common, "query_only(1)")...))
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("sqlite: open readers: %w", err)
		}
		r.SetMaxOpenConns(o.readers)
		r.SetMaxIdleConns(o.readers)
		r.SetConnMaxIdleTime(time.Minute)
		s.r = r
		if err := r.PingContext(ctx); err != nil {
			s.w.Close()
			s.r.Close()
			return nil, wrap("open readers", err)
		}
	}
	s.ws, s.rs = newStmts(s.w), newStmts(s.r)
	s.ws.writes = &s.outsideWrites
	if s.r == s.w {
		s.rs = s.ws
	}
	s.chains = newChainCache(&s.outsideWrites)
	if err := errors.Join(s.ws.prepareAll(ctx, writerQueries), s.rs.prepareAll(ctx, readerQueries)); err != nil {
		s.Close()
		return nil, wrap("open: prepare", err)
	}
	s.families = newFamilyCache(abs)
	s.clients = newClientCache(s.families.walIndex(), s.rs)
	s.startCommitter(o.onBatch)
	return s, nil
}

// onBusyRetry, if set (by tests), is called each time pingWhileBusy tries
// again.
var onBusyRetry func()

// pingWhileBusy opens the writer's first connection, whose pragmas turn a
// new file to WAL mode. SQLite refuses that change at once, without its
// busy handler, while another connection holds the file (a replica opening
// the same new file at the same moment, say), so it tries again, with a
// growing pause, for up to BusyTimeout.
func pingWhileBusy(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(BusyTimeout)
	pause := 5 * time.Millisecond
	for {
		err := db.PingContext(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		if onBusyRetry != nil {
			onBusyRetry()
		}
		if err := clock.Sleep(ctx, pause); err != nil {
			return err
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// isBusy reports whether err is SQLite's SQLITE_BUSY.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// dsn is the modernc.org/sqlite data source name of the file at abs.
func dsn(abs, txlock string, pragmas ...string) string {
	q := url.Values{}
	if txlock != "" {
		q.Set("_txlock", txlock)
	}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	// The path is escaped so that '?', '#' and '%' in it survive the URI.
	return "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()
}

// migrate brings the schema up to date with the embedded migrations, under a
// file lock so that two processes never apply the same migration.
func migrate(ctx context.Context, db *sql.DB, abs string) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys,
		goose.WithLocker(&fileLocker{f: flock.New(abs + ".migrate-lock")}),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return wrap("migrate", err)
	}
	return nil
}

// fileLocker is a goose lock.Locker holding an exclusive flock(2) on a file
// while migrations run.
type fileLocker struct {
	f *flock.Flock
}

func (l *fileLocker) Lock(ctx context.Context, _ *sql.DB) error {
	ok, err := l.f.TryLockContext(ctx, 20*time.Millisecond)
	if err != nil {
		return fmt.Errorf("lock %s: %w", l.f.Path(), err)
	}
	if !ok {
		return fmt.Errorf("lock %s: not acquired", l.f.Path())
	}
	return nil
}

func (l *fileLocker) Unlock(context.Context, *sql.DB) error {
	return l.f.Close()
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Ping reports whether the database is open and its file readable, by one
// read of the file's header on a reader. In WAL mode a reader waits for no
// writer, so Ping (the health check) answers at once however many write
// batches are queued on the single writer connection.
func (s *Store) Ping(ctx context.Context) error {
	var v int64
	if err := s.rs.queryRow(ctx, nil, qPing).Scan(&v); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// Close closes the database. Calls after Close fail with errors wrapping
// store.ErrUnavailable.
func (s *Store) Close() error {
	if s.c != nil {
		s.stopCommitter()
	}
	s.families.close()
	errs := []error{s.ws.close()}
	if s.r != s.w {
		errs = append(errs, s.rs.close(), s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// wrap gives err the context of the operation that failed. Errors that mean
// the database cannot be used right now (locked by another process past the
// busy timeout, closed, disk full, I/O error) also wrap store.ErrUnavailable.
func wrap(what string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("sqlite: %s: %w: %w", what, store.ErrUnavailable, err)
	}
	return fmt.Errorf("sqlite: %s: %w", what, err)
}

func unavailable(err error) bool {
	if errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "sql: database is closed") {
		return true
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // the primary result code
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL,
		sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN:
		return true
	}
	return false
}

// isConstraint reports whether err is a violated UNIQUE or PRIMARY KEY
// constraint.
func isConstraint(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}

// micros is the column value of t: unix microseconds, or NULL for the zero
// time.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// fromMicros is the time.Time, in UTC, of a column written by micros.
func fromMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}
