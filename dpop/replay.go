package dpop

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// A ReplayCache remembers the proofs a Verifier has accepted, so that none
// is accepted twice. Implementations must be safe for concurrent use.
type ReplayCache interface {
	// Seen records key until expires and reports whether it was already
	// recorded and had not expired by now. key identifies one proof (see
	// ReplayKey); expires is when the proof leaves the Verifier's window,
	// after which it is refused by its iat alone.
	Seen(ctx context.Context, key [32]byte, now, expires time.Time) (bool, error)
}

// A ReplayLookup is a ReplayCache that can also tell, without recording
// anything, whether a proof was recorded: Verifier.Check then refuses a
// replayed proof before the request's credential is checked, rather than
// Record after. MemoryReplay is one.
type ReplayLookup interface {
	ReplayCache
	// Recorded reports whether key was recorded and had not expired by
	// now.
	Recorded(ctx context.Context, key [32]byte, now time.Time) (bool, error)
}

// ReplayKey is the key under which a proof with the given key thumbprint
// and jti is remembered: their SHA-256, so that entries have a fixed size
// whatever a client puts in jti, and that one key's jti values cannot
// collide with another's.
func ReplayKey(jkt, jti string) [32]byte {
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// DefaultReplayEntries is the capacity of a MemoryReplay made with zero.
const DefaultReplayEntries = 1 << 18

// MemoryReplay is a ReplayCache in memory, bounded: it holds at most a
// fixed number of unexpired entries (about 80 bytes each) and refuses new
// ones, with ErrReplayCacheFull, rather than forget one that has not
// expired. A Verifier's window bounds how long an entry lives, so the
// capacity bounds the rate of proofs: 2^18 entries with a 70 s window
// allow 3,700 proofs a second. Create one with NewMemoryReplay; the zero
// value is not usable.
type MemoryReplay struct {
	max int

	mu    sync.Mutex // guards seen and order
	seen  map[[32]byte]time.Time
	order []replayEntry // in the order recorded; expired ones are swept from the front
	head  int           // index in order of the oldest entry still kept
}

type replayEntry struct {
	key     [32]byte
	expires time.Time
}

// NewMemoryReplay returns a MemoryReplay of at most max entries; zero or
// less means DefaultReplayEntries.
func NewMemoryReplay(max int) *MemoryReplay {
	if max <= 0 {
		max = DefaultReplayEntries
	}
	return &MemoryReplay{max: max, seen: make(map[[32]byte]time.Time)}
}

// Seen implements ReplayCache.
func (m *MemoryReplay) Seen(_ context.Context, key [32]byte, now, expires time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	if exp, ok := m.seen[key]; ok && exp.After(now) {
		return true, nil
	}
	if len(m.seen) >= m.max {
		m.sweepAll(now)
		if len(m.seen) >= m.max {
			return false, fmt.Errorf("%w: %d proofs inside the window", ErrReplayCacheFull, len(m.seen))
		}
	}
	m.seen[key] = expires
	m.order = append(m.order, replayEntry{key: key, expires: expires})
	return false, nil
}

// Recorded implements ReplayLookup.
func (m *MemoryReplay) Recorded(_ context.Context, key [32]byte, now time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, ok := m.seen[key]
	return ok && exp.After(now), nil
}

// sweep forgets the entries, oldest first, that expired by now. It stops
// at the first that has not: entries are recorded in the order proofs
// arrive, and an entry lives no longer than the window, so what it leaves
// behind is at most one window old.
func (m *MemoryReplay) sweep(now time.Time) {
	for m.head < len(m.order) && !m.order[m.head].expires.After(now) {
		e := m.order[m.head]
		if exp, ok := m.seen[e.key]; ok && exp.Equal(e.expires) {
			delete(m.seen, e.key)
		}
		m.order[m.head] = replayEntry{}
		m.head++
	}
	if m.head > 1024 && m.head > len(m.order)/2 {
		n := copy(m.order, m.order[m.head:])
		clear(m.order[n:])
		m.order = m.order[:n]
		m.head = 0
	}
}

// sweepAll forgets every entry that expired by now, wherever it is.
func (m *MemoryReplay) sweepAll(now time.Time) {
	kept := m.order[:0]
	for _, e := range m.order[m.head:] {
		if e.expires.After(now) {
			kept = append(kept, e)
		} else if exp, ok := m.seen[e.key]; ok && exp.Equal(e.expires) {
			delete(m.seen, e.key)
		}
	}
	clear(m.order[len(kept):])
	m.order, m.head = kept, 0
}

// Len returns the number of entries held.
func (m *MemoryReplay) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}
