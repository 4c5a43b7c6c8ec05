// Package store defines Store, everything the server keeps. The backends
// live in its subpackages: sqlite (embedded, the default), postgres (for
// several replicas) and memstore (in memory, for tests and fakes);
// storetest is the conformance suite all three pass, and dsn opens the
// backend a data source name names.
package store

import (
	"context"

	"github.com/silentrefresh/silentrefresh/assertion"
	"github.com/silentrefresh/silentrefresh/registry"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// Store is everything the server keeps: sessions, signing keys and users.
type Store interface {
	session.Store
	token.KeyStore
	user.Store
	user.ClaimStore
	registry.Store
	assertion.ReplayStore
	Accounts
	// Ping reports whether the database can be reached. It is the health
	// check: it must not wait behind the store's own queued writes.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}
