// Package memstore is a store.Store in memory: sessions, signing keys,
// users and secrets in maps behind one mutex. It passes store/storetest like
// the database stores, so tests and fakes (client/clienttest) can run the
// real session.Engine and token.Issuer without a database. Nothing survives
// the process.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// Store is a handle on an in-memory database. It is safe for concurrent
// use. Close ends the handle, not the data: Reopen gives another handle on
// the same data, as a second process would open the same database file.
// The zero Store is not usable; call New.
type Store struct {
	db     *db
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// db is the data every handle of one database shares.
type db struct {
	mu       sync.Mutex // guards every field below
	families map[string]session.Family
	tokens   map[string]session.RefreshToken // by string(Hash)
	chains   map[string][]string             // family ID → token hashes, by generation
	secrets  map[string][]byte
	keys     map[string]token.Key
	users    map[string]user.User // by username
	userIDs  map[string]bool
	more     *moreData // attributes, user claims, jti, clients; see adopt.go
}

// New returns a Store on a new, empty database.
func New() *Store {
	return &Store{db: &db{
		families: map[string]session.Family{},
		tokens:   map[string]session.RefreshToken{},
		chains:   map[string][]string{},
		secrets:  map[string][]byte{},
		keys:     map[string]token.Key{},
		users:    map[string]user.User{},
		userIDs:  map[string]bool{},
	}}
}

// Reopen returns a new handle on the data of s, whether s is open or
// closed.
func (s *Store) Reopen() *Store { return &Store{db: s.db} }

// errClosed is the error of every call on a closed handle.
var errClosed = fmt.Errorf("memstore: closed: %w", store.ErrUnavailable)

// lock checks that the handle is open and the context alive, and locks the
// data. The caller unlocks s.db.mu.
func (s *Store) lock(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	s.db.mu.Lock()
	return nil
}

// Ping fails once the handle is closed.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return ctx.Err()
}

// Close ends the handle; the data stay for Reopen. Calls after Close fail
// with errors wrapping store.ErrUnavailable.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

// utc is how the SQL stores keep an instant: in UTC, to the microsecond.
// The zero time stays zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// errInvalid is the error of a write that the SQL stores would refuse too.
func errInvalid(what string) error { return errors.New("memstore: " + what) }
