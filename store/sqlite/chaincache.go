package sqlite

import (
	"database/sql"
	"sync/atomic"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
)

// A rotation reads the chain of the token presented, and in the steady
// state that token is the successor that the committer itself inserted at
// the family's previous rotation, with a family and attributes it read
// then. The committer remembers those chains (the chain of each successor
// it inserted, as the chain statement would return it) and answers the
// next exchange of that token from memory, which takes the five-way chain
// read off the serial path of the group commit.
//
// A remembered chain is only as good as the knowledge that nothing but the
// committer changed the rows it was made of, so every batch first checks,
// inside its IMMEDIATE transaction (nobody else can commit until it ends):
//
//   - PRAGMA data_version on the writer connection, which changes when any
//     other connection, of this process or another, has committed since it
//     was last read;
//   - the statements run on the writer connection outside the batches
//     (user updates, subject revocations, attributes, clients, keys, the
//     sweeps: stmts.exec, query and queryRow of the writer's statements
//     track themselves in outsideWrites), which data_version does not see
//     because they use the same connection.
//
// If data_version moved, if a statement outside the batches finished since
// the last batch, or if one is in flight (it may have run and released the
// connection without having counted itself done yet), the batch forgets
// every chain. Inside the committer, a
// request other than an exchange (a login, a revocation), an exchange whose
// change revokes, a request rolled back to its savepoint and a batch that
// fails to commit forget every chain too: only a successful rotation
// teaches one, and it replaces the chain of the token it consumed. So a
// chain answered from memory is the one the statement would have read.

// maxChains bounds the chains remembered; past it the committer forgets
// them all and starts again.
const maxChains = 1 << 14

// outsideWrites tracks the statements run on the writer connection outside
// the batches: inFlight is raised before each and lowered after done is
// counted up.
type outsideWrites struct {
	inFlight atomic.Int64
	done     atomic.Uint64
}

// end counts a statement marked by stmts.counted done; nothing on nil.
func (w *outsideWrites) end() {
	if w != nil {
		w.done.Add(1)
		w.inFlight.Add(-1)
	}
}

// chainCache belongs to the committing goroutine; only writes is shared.
type chainCache struct {
	m map[string]session.Chain // by token hash
	// byFamily is the token of the family whose chain is remembered.
	byFamily map[string]string

	writes *outsideWrites

	// seenWrites and dataVersion are what the last batch saw.
	seenWrites  uint64
	dataVersion int64
	valid       bool // seenWrites and dataVersion were read

	hits int // chains answered from memory, for tests
}

func newChainCache(writes *outsideWrites) *chainCache {
	return &chainCache{m: map[string]session.Chain{}, byFamily: map[string]string{}, writes: writes}
}

// begin checks, at the start of a batch, that nothing but the committer
// wrote since the last batch; dataVersion is PRAGMA data_version read in
// the batch's transaction.
func (c *chainCache) begin(dataVersion int64) {
	busy := c.writes.inFlight.Load() != 0
	w := c.writes.done.Load()
	if !c.valid || busy || w != c.seenWrites || dataVersion != c.dataVersion {
		c.clear()
	}
	c.seenWrites, c.dataVersion, c.valid = w, dataVersion, true
}

// invalidate makes the next batch forget every chain (the batch's version
// check cannot be trusted, e.g. it failed).
func (c *chainCache) invalidate() {
	c.clear()
	c.valid = false
}

// clear forgets every chain. Like get and rotated, it does nothing on a
// nil cache (a batch that could not check it).
func (c *chainCache) clear() {
	if c != nil && len(c.m) > 0 {
		clear(c.m)
		clear(c.byFamily)
	}
}

func (c *chainCache) get(hash []byte) (session.Chain, bool) {
	if c == nil {
		return session.Chain{}, false
	}
	ch, ok := c.m[string(hash)]
	if ok {
		c.hits++
	}
	return ch, ok
}

// rotated remembers the chain of next, the successor that a rotation of
// the chain c just inserted, and forgets c's.
func (c *chainCache) rotated(prev session.Chain, next session.RefreshToken) {
	if c == nil {
		return
	}
	if old, ok := c.byFamily[prev.Family.ID]; ok {
		delete(c.m, old)
	}
	if len(c.m) >= maxChains {
		c.clear()
	}
	nc := prev
	nc.Token = session.RefreshToken{
		Hash:       append([]byte(nil), next.Hash...),
		FamilyID:   prev.Family.ID,
		Generation: next.Generation,
		IssuedAt:   stored(next.IssuedAt),
		ExpiresAt:  stored(next.ExpiresAt),
	}
	nc.Successor = nil
	c.m[string(nc.Token.Hash)] = nc
	c.byFamily[prev.Family.ID] = string(nc.Token.Hash)
}

// stored is t as the store gives it back once written (micros) and read
// (fromMicros).
func stored(t time.Time) time.Time {
	return fromMicros(sql.NullInt64{Int64: t.UnixMicro(), Valid: !t.IsZero()})
}
