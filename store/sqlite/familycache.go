package sqlite

import (
	"bytes"
	"hash/maphash"
	"os"
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
// The state is the WAL-index header that SQLite keeps in the shared-memory
// file beside the database (PATH-shm): every connection that commits
// rewrites it before its commit returns — a change counter, the last valid
// frame, the frame checksums and the salts of the log — and it is written
// twice, the second copy first, so that a reader that finds both copies
// equal has a consistent one. Reading it is one pread of 96 bytes, against
// a statement on a pooled connection for the lookup.
//
// Any commit makes every entry stale, so under a refresh load (a commit
// every few milliseconds) few lookups are answered from memory; on a
// server that is mostly checking sessions, most are.

// familyCacheSlots is the number of families remembered (direct-mapped by
// a hash of the ID: a family evicts the one in its slot).
const familyCacheSlots = 4096

// walHeaderSize is the size of one copy of the WAL-index header.
const walHeaderSize = 48

// familyCache remembers families read by Family. Its zero value, and a nil
// *familyCache, remember nothing.
type familyCache struct {
	shm   *os.File // PATH-shm, read-only
	seed  maphash.Seed
	slots []atomic.Pointer[familyEntry]
}

type familyEntry struct {
	id  string
	wal [walHeaderSize]byte // the log's state when fam was read
	fam session.Family
}

// newFamilyCache opens the shared-memory file of the database at abs, or
// returns nil (no cache) if it cannot.
func newFamilyCache(abs string) *familyCache {
	f, err := os.Open(abs + "-shm")
	if err != nil {
		return nil
	}
	c := &familyCache{shm: f, seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[familyEntry], familyCacheSlots)}
	if _, ok := c.walState(); !ok {
		f.Close()
		return nil
	}
	return c
}

func (c *familyCache) close() {
	if c != nil {
		c.shm.Close()
	}
}

// walState returns the current WAL-index header, or false if it cannot be
// read consistently (being rewritten, or not a WAL database).
func (c *familyCache) walState() (h [walHeaderSize]byte, ok bool) {
	var b [2 * walHeaderSize]byte
	if n, err := c.shm.ReadAt(b[:], 0); err != nil || n != len(b) {
		return h, false
	}
	const isInit = 12 // offset of the header's isInit byte
	if b[isInit] == 0 || !bytes.Equal(b[:walHeaderSize], b[walHeaderSize:]) {
		return h, false
	}
	copy(h[:], b[:walHeaderSize])
	return h, true
}

func (c *familyCache) slot(id string) *atomic.Pointer[familyEntry] {
	return &c.slots[maphash.String(c.seed, id)%familyCacheSlots]
}

// get returns the remembered family with the given ID if the log is still
// in the state it was read in. Otherwise it returns the current state for
// put, or ok false if there is none (then nothing may be remembered).
func (c *familyCache) get(id string) (f session.Family, hit bool, state [walHeaderSize]byte, ok bool) {
	if c == nil {
		return f, false, state, false
	}
	state, ok = c.walState()
	if !ok {
		return f, false, state, false
	}
	if e := c.slot(id).Load(); e != nil && e.id == id && e.wal == state {
		return e.fam, true, state, true
	}
	return f, false, state, true
}

// put remembers f as read after the log was in the given state.
func (c *familyCache) put(state [walHeaderSize]byte, f session.Family) {
	c.slot(f.ID).Store(&familyEntry{id: f.ID, wal: state, fam: f})
}
