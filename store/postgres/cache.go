package postgres

import (
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/silentrefresh/silentrefresh/registry"
	"github.com/silentrefresh/silentrefresh/session"
)

// Family (every session-checked request) and Client (every token request
// that names a client) answer from memory while the invalidation listener
// (listen.go) vouches for the caches, and query the database otherwise.
//
// A cache holds stored records, never decisions: the caller's rules run on
// the record at every lookup, so expiry is judged at lookup time. Not-found
// answers are remembered for clients (an INSERT notifies) but not for
// families.
//
// Each cache is a fixed array of slots, one entry per slot, and a key may
// live in either slot of the pair a seeded hash of it picks (two-way set
// associative), so memory is bounded by the number of slots, a new entry
// evicts one of the pair when both hold other keys, and two busy keys that
// hash alike do not keep evicting each other. A hit is a hash, one or two
// atomic loads and a string compare; no lock is taken.
//
// Invalidation and fills are ordered by gen, which counts invalidations of
// either cache. A lookup that misses reads gen before its query and stores
// its result only if gen has not moved when it is stored (checked again
// after the store, so that an invalidation that slips in between removes
// it): a notification that arrives while a read is in flight can never
// leave the old row cached.
const (
	// familySlots is the size of the family cache (a power of two).
	familySlots = 1 << 16
	// clientSlots is the size of the client cache (a power of two).
	clientSlots = 1 << 12
)

// caches are the family and client caches of one Store.
type caches struct {
	// gen counts invalidations (of one key or of everything) and
	// changes of the listener's state.
	gen atomic.Uint64
	// healthyUntil is the reading of now until which the listener vouches
	// for the caches; no later reading is vouched for. 0: not healthy.
	healthyUntil atomic.Int64
	// now reads a monotonic clock in nanoseconds.
	now func() int64

	families table[session.Family]
	clients  table[clientEntry]

	// queries counts lookups that went to the database (misses and
	// lookups while the caches were not usable); only tests read it.
	queries atomic.Uint64
}

// clientEntry is a remembered Client answer: found is false for an
// unknown client_id.
type clientEntry struct {
	c     registry.Client
	found bool
}

func newCaches(familyN, clientN int, now func() int64) *caches {
	if now == nil {
		epoch := time.Now()
		now = func() int64 { return int64(time.Since(epoch)) + 1 }
	}
	return &caches{
		now:      now,
		families: newTable[session.Family](familyN),
		clients:  newTable[clientEntry](clientN),
	}
}

// usable reports whether the listener vouches for the caches now.
func (c *caches) usable() bool {
	return c.now() < c.healthyUntil.Load()
}

// begin is called before a lookup's query: it returns the generation to
// pass to fill, and false if the result must not be stored at all.
func (c *caches) begin() (uint64, bool) {
	c.queries.Add(1)
	g := c.gen.Load()
	return g, c.usable()
}

// down marks the caches unusable until the listener vouches again.
func (c *caches) down() {
	c.healthyUntil.Store(0)
	c.gen.Add(1)
}

// vouch makes the caches usable until the given reading of now.
func (c *caches) vouch(until int64) { c.healthyUntil.Store(until) }

// clearAll forgets every entry of both caches.
func (c *caches) clearAll() {
	c.gen.Add(1)
	c.families.clear()
	c.clients.clear()
}

func (c *caches) family(id string) (session.Family, bool) {
	if !c.usable() {
		return session.Family{}, false
	}
	return c.families.get(id)
}

func (c *caches) client(id string) (registry.Client, bool, bool) {
	if !c.usable() {
		return registry.Client{}, false, false
	}
	e, ok := c.clients.get(id)
	if !ok {
		return registry.Client{}, false, false
	}
	cl := e.c
	cl.Scopes = slices.Clone(cl.Scopes) // the caller may change its copy
	return cl, e.found, true
}

func (c *caches) forgetFamily(id string) { c.gen.Add(1); c.families.forget(id) }
func (c *caches) forgetClient(id string) { c.gen.Add(1); c.clients.forget(id) }

// table is one direct-mapped cache.
type table[V any] struct {
	seed  maphash.Seed
	slots []atomic.Pointer[entry[V]]
}

type entry[V any] struct {
	key string
	val V
}

func newTable[V any](n int) table[V] {
	if n < 2 || n&(n-1) != 0 {
		panic("postgres: cache size must be a power of two, at least 2")
	}
	return table[V]{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[entry[V]], n)}
}

// set returns the two slots where key may be: a pair of neighbours.
func (t *table[V]) set(key string) (a, b *atomic.Pointer[entry[V]]) {
	i := maphash.String(t.seed, key) & uint64(len(t.slots)-1)
	return &t.slots[i], &t.slots[i^1]
}

func (t *table[V]) get(key string) (V, bool) {
	a, b := t.set(key)
	if e := a.Load(); e != nil && e.key == key {
		return e.val, true
	}
	if e := b.Load(); e != nil && e.key == key {
		return e.val, true
	}
	var zero V
	return zero, false
}

// fill stores the result of a query that began at generation g, unless
// an invalidation happened since. It takes a slot of the key's pair that
// is free or holds the key, or else evicts one of the two. between, if not
// nil, is called between the first check and the store (a test hook).
func (t *table[V]) fill(gen *atomic.Uint64, g uint64, key string, v V, between func()) {
	if gen.Load() != g {
		return
	}
	if between != nil {
		between()
	}
	e := &entry[V]{key: key, val: v}
	s, b := t.set(key)
	if old := s.Load(); old != nil && old.key != key {
		if old := b.Load(); old == nil || old.key == key || rand.Uint64()&1 == 0 {
			s = b
		}
	}
	s.Store(e)
	// An invalidation that incremented gen after the check above may
	// have looked at the slot before the store: take e out again. One
	// that increments it later finds e in the slot and removes it.
	if gen.Load() != g {
		s.CompareAndSwap(e, nil)
	}
}

// forget removes the entries of key. The caller has incremented gen
// first.
func (t *table[V]) forget(key string) {
	a, b := t.set(key)
	for _, s := range [2]*atomic.Pointer[entry[V]]{a, b} {
		if e := s.Load(); e != nil && e.key == key {
			s.CompareAndSwap(e, nil)
		}
	}
}

func (t *table[V]) clear() {
	for i := range t.slots {
		t.slots[i].Store(nil)
	}
}

// len counts the entries (for tests).
func (t *table[V]) len() int {
	n := 0
	for i := range t.slots {
		if t.slots[i].Load() != nil {
			n++
		}
	}
	return n
}

// forgetFamilies drops families this Store changed from its cache, as soon
// as the change was committed (or its outcome is unknown), so that this
// process does not wait for the notification.
func (s *Store) forgetFamilies(ids ...string) {
	if s.cache == nil {
		return
	}
	for _, id := range ids {
		s.cache.forgetFamily(id)
	}
}

// forgetClient drops a client this Store changed from its cache.
func (s *Store) forgetClient(id string) {
	if s.cache != nil {
		s.cache.forgetClient(id)
	}
}
