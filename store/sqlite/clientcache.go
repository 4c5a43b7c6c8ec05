package sqlite

import (
	"context"
	"hash/maphash"
	"slices"
	"sync/atomic"

	"github.com/silentrefresh/silentrefresh/registry"
)

// Every token request that names a client reads the client registry, which
// changes rarely. The store remembers the answers of Client (registered
// clients and not-found answers), each for one version of the registry: a
// counter in the file that triggers on the clients table increment in the
// transaction of every change, whoever makes it (migration 00005).
//
// Whether the version may have changed is told by the WAL-index header
// (walindex.go): while it is the header at which the version was last read,
// nothing committed since, and the remembered answers of that version are
// current. When it differs (after any commit: under a refresh load, after
// nearly every lookup), one lookup reads the version again — one statement
// while the others wait for it — and, if it changed, drops every answer.
// Lookups pay a statement at most once per commit however many share it,
// and read a client row only when the registry changed or the answer is not
// remembered.
//
// Correctness. A change is seen by every lookup that starts after it
// committed: the commit changed the header before it returned, so the
// lookup reads a header that no version read before the commit was
// confirmed at, and reads the version again. The header is read before the
// version, so a commit racing the version read leaves a header that the
// next lookup finds changed. An answer is stored only if the header is
// still, after its row was read, the one at which its version was read: no
// commit in between, so the row is the row of that version, and a lookup
// whose read raced a change stores nothing.
//
// Memory. Registered clients and not-found answers have a fixed number of
// slots each, direct-mapped by a seeded hash of the client_id, and only ids
// of at most registry.MaxIDLen bytes are remembered: at most
// 2 × clientCacheSlots answers. Client IDs of public clients are chosen by
// whoever sends the request, so a flood of made-up ids lands only in the
// not-found slots, where it cannot push out a registered client. Nor does it
// push out a not-found answer in use (a real public client): an answer that
// was looked up again since it was stored is passed over once by a new
// answer for its slot, so it goes only if two new ids land in its slot
// between two of its lookups. Made-up ids, never looked up again, replace
// one another.
//
// If the shared-memory file cannot be read (no cache: nil), or its header
// cannot be read at the time of a lookup, the lookup reads the registry.
//
// The version only moves forward through the triggers; restoring an older
// copy of the file under a running server (which SQLite does not support
// either) could bring back a version that was seen with other rows.

// clientCacheSlots is the number of registered clients, and the number of
// not-found answers, remembered.
const clientCacheSlots = 1024

const qRegistryVersion = `SELECT version FROM registry_version`

// clientCache remembers the answers of Client. A nil *clientCache
// remembers nothing.
type clientCache struct {
	wal  *walIndex // shared with the family cache, which closes it
	rs   *stmts    // the reader pool, for the version
	seed maphash.Seed
	// confirmed is the registry version last read, with the header read
	// before it.
	confirmed atomic.Pointer[registryState]
	// check is held by the one lookup reading the version.
	check chan struct{}
	// found and missing are the slots of registered clients and of
	// not-found answers.
	found, missing []atomic.Pointer[clientEntry]

	// Test hooks, set before the cache is used: afterRead runs after every
	// read of a client row, beforeVersion before every read of the version.
	afterRead     func(id string)
	beforeVersion func()
}

// registryState is a registry version and the WAL-index header read before
// it.
type registryState struct {
	wal     walHeader
	version int64
}

// clientEntry is a remembered answer; only used changes once stored.
type clientEntry struct {
	id      string
	version int64
	found   bool
	client  registry.Client // if found
	// used is set when the answer is looked up again.
	used atomic.Bool
}

// newClientCache returns a cache whose lookups read the header through wal
// and the version through rs, or nil (no cache) if wal is nil.
func newClientCache(wal *walIndex, rs *stmts) *clientCache {
	if wal == nil {
		return nil
	}
	return &clientCache{
		wal: wal, rs: rs, seed: maphash.MakeSeed(),
		check:   make(chan struct{}, 1),
		found:   make([]atomic.Pointer[clientEntry], clientCacheSlots),
		missing: make([]atomic.Pointer[clientEntry], clientCacheSlots),
	}
}

// current returns the registry version of now, with the header read before
// it, reading the version only if something committed since it was last
// read; nil (and no error) if the header cannot be read, so nothing may be
// answered from memory or remembered.
func (c *clientCache) current(ctx context.Context) (*registryState, error) {
	if c == nil {
		return nil, nil
	}
	h, ok := c.wal.state()
	if !ok {
		return nil, nil
	}
	if st := c.confirmed.Load(); st != nil && st.wal == h {
		return st, nil
	}
	select {
	case c.check <- struct{}{}:
	case <-ctx.Done():
		return nil, wrap("client: registry version", context.Cause(ctx))
	}
	defer func() { <-c.check }()
	// Another lookup may have read the version while this one waited: the
	// header is read again, and the version too unless it was read at it.
	if h, ok = c.wal.state(); !ok {
		return nil, nil
	}
	prev := c.confirmed.Load()
	if prev != nil && prev.wal == h {
		return prev, nil
	}
	if c.beforeVersion != nil {
		c.beforeVersion()
	}
	st := &registryState{wal: h}
	// One primary-key read on a read-only connection, which in WAL mode
	// waits for no lock: run without the caller's cancellation, which would
	// cost the driver a goroutine and a progress handler.
	if err := c.rs.queryRow(context.WithoutCancel(ctx), nil, qRegistryVersion).Scan(&st.version); err != nil {
		return nil, wrap("client: registry version", err)
	}
	if prev != nil && prev.version != st.version {
		c.drop()
	}
	c.confirmed.Store(st)
	return st, nil
}

// drop forgets every answer. Answers of the old version stored meanwhile
// by lookups that read before it are never answered: their version is not
// the current one.
func (c *clientCache) drop() {
	for _, slots := range [][]atomic.Pointer[clientEntry]{c.found, c.missing} {
		for i := range slots {
			slots[i].Store(nil)
		}
	}
}

// slot is the index of id's slots in found and missing.
func (c *clientCache) slot(id string) uint64 {
	return maphash.String(c.seed, id) % clientCacheSlots
}

// get returns the answer for id remembered for st's version, or nil.
func (c *clientCache) get(st *registryState, id string) *clientEntry {
	if c == nil || st == nil {
		return nil
	}
	i := c.slot(id)
	for _, slots := range [][]atomic.Pointer[clientEntry]{c.found, c.missing} {
		if e := slots[i].Load(); e != nil && e.id == id && e.version == st.version {
			if !e.used.Load() {
				e.used.Store(true)
			}
			return e
		}
	}
	return nil
}

// put remembers the answer for id, read after st was current, unless
// something committed since st's header was read or id is longer than a
// client_id may be.
func (c *clientCache) put(st *registryState, id string, cl registry.Client, found bool) {
	if c == nil || st == nil || len(id) > registry.MaxIDLen {
		return
	}
	if h, ok := c.wal.state(); !ok || h != st.wal {
		return
	}
	slots := c.missing
	if found {
		slots = c.found
	}
	s := &slots[c.slot(id)]
	if old := s.Load(); old != nil && old.id != id && old.version == st.version && old.used.Load() {
		old.used.Store(false) // a second chance for an answer in use
		return
	}
	cl.Scopes = slices.Clone(cl.Scopes) // the caller has the other copy
	s.Store(&clientEntry{id: id, version: st.version, found: found, client: cl})
}

// answer is the remembered answer as Client returns it: a copy whose
// scopes the caller may change.
func (e *clientEntry) answer() (registry.Client, error) {
	if !e.found {
		return registry.Client{}, errClientNotFound
	}
	c := e.client
	c.Scopes = slices.Clone(c.Scopes) // nil stays nil: any scope
	return c, nil
}
