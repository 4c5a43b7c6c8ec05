package sqlite

import (
	"hash/maphash"
	"sync/atomic"

	"github.com/silentrefresh/silentrefresh/session"
)

// The session check of every bearer-checked request reads a family. The
// store remembers the families it read, each tagged with the state of the
// write-ahead log when it read it, and answers from memory while the log
// is in that state: no commit since, by any connection of any process, so
// the family is as stored. The first commit after (a revocation, or any
// other write) changes the state, and the next lookup reads the file
// again — a revocation is seen the instant it commits, wherever it
// committed.
//
// The state is the WAL-index header in the database's shared-memory file
// (walindex.go): one pread of 96 bytes, against a statement on a pooled
// connection for the lookup.
//
// Any commit makes every entry stale, so under a refresh load (a commit
// every few milliseconds) few lookups are answered from memory; on a
// server that is mostly checking sessions, most are.

// familyCacheSlots is the number of families remembered (direct-mapped by
// a hash of the ID: a family evicts the one in its slot).
const familyCacheSlots = 4096

// familyCache remembers families read by Family. Its zero value, and a nil
// *familyCache, remember nothing.
type familyCache struct {
	wal   *walIndex // shared with the client cache, closed by close
	seed  maphash.Seed
	slots []atomic.Pointer[familyEntry]
}

type familyEntry struct {
	id  string
	wal walHeader // the log's state when fam was read
	fam session.Family
}

// newFamilyCache opens the shared-memory file of the database at abs, or
// returns nil (no cache) if it cannot be read.
func newFamilyCache(abs string) *familyCache {
	w := openWALIndex(abs)
	if w == nil {
		return nil
	}
	return &familyCache{wal: w, seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[familyEntry], familyCacheSlots)}
}

// walIndex returns the header reader of the cache, nil if c is nil.
func (c *familyCache) walIndex() *walIndex {
	if c == nil {
		return nil
	}
	return c.wal
}

func (c *familyCache) close() {
	if c != nil {
		c.wal.close()
	}
}

func (c *familyCache) slot(id string) *atomic.Pointer[familyEntry] {
	return &c.slots[maphash.String(c.seed, id)%familyCacheSlots]
}

// get returns the remembered family with the given ID if the log is still
// in the state it was read in. Otherwise it returns the current state for
// put, or ok false if there is none (then nothing may be remembered).
func (c *familyCache) get(id string) (f session.Family, hit bool, state walHeader, ok bool) {
	if c == nil {
		return f, false, state, false
	}
	state, ok = c.wal.state()
	if !ok {
		return f, false, state, false
	}
	if e := c.slot(id).Load(); e != nil && e.id == id && e.wal == state {
		return e.fam, true, state, true
	}
	return f, false, state, true
}

// put remembers f as read after the log was in the given state.
func (c *familyCache) put(state walHeader, f session.Family) {
	c.slot(f.ID).Store(&familyEntry{id: f.ID, wal: state, fam: f})
}
