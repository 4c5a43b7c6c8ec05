package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store/storetest"
	"github.com/silentrefresh/silentrefresh/user"
)

// chainRig is a store with one family "f" of user "alice" whose current
// token the test rotates.
type chainRig struct {
	t    *testing.T
	s    *Store
	path string
	cur  session.RefreshToken
	n    int
}

func newChainRig(t *testing.T) *chainRig {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chains.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := time.Now().UTC()
	f := session.Family{ID: "f", Subject: "alice", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	first := session.RefreshToken{Hash: storetest.Hash("f-0"), FamilyID: "f", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	if _, err := s.CreateFamilyCapped(t.Context(), f, first, 0, ""); err != nil {
		t.Fatal(err)
	}
	return &chainRig{t: t, s: s, path: path, cur: first}
}

// rotate exchanges the current token and returns the chain decide saw.
func (r *chainRig) rotate() session.Chain {
	r.t.Helper()
	var seen session.Chain
	r.n++
	now := time.Now().UTC()
	next := &session.RefreshToken{Hash: storetest.Hash(fmt.Sprintf("f-%d", r.n)), FamilyID: "f", Generation: r.cur.Generation + 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	err := r.s.Exchange(r.t.Context(), r.cur.Hash, func(c session.Chain) (session.Change, error) {
		seen = c
		if c.Family.Revoked() || c.Token.Consumed() {
			return session.Change{}, nil
		}
		return session.Change{Consume: next, ConsumedAt: now}, nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	if !seen.Family.Revoked() && !seen.Token.Consumed() {
		r.cur = *next
	}
	return seen
}

// warm rotates until the next exchange is answered from memory, and fails
// if it is not.
func (r *chainRig) warm() {
	r.t.Helper()
	r.rotate()
	before := r.hits()
	c := r.rotate()
	if r.hits() != before+1 {
		r.t.Fatalf("the second rotation in a row read its chain from the file (hits %d -> %d)", before, r.hits())
	}
	if c.Family.Revoked() || c.Token.Consumed() || c.Token.Generation != r.cur.Generation-1 {
		r.t.Fatalf("remembered chain %+v", c)
	}
}

// hits is read between exchanges, when the committer is idle: each
// Exchange returns after its batch, whose goroutine updated it.
func (r *chainRig) hits() int { return r.s.chains.hits }

// TestChainCacheAnswersLikeTheFile: a remembered chain is the chain the
// statement reads, field for field.
func TestChainCacheAnswersLikeTheFile(t *testing.T) {
	r := newChainRig(t)
	r.warm()
	// The chain of the current token from memory, then from the file.
	var fromMemory, fromFile session.Chain
	peek := func(dst *session.Chain) {
		err := r.s.Exchange(t.Context(), r.cur.Hash, func(c session.Chain) (session.Change, error) {
			*dst = c
			return session.Change{}, errPeek
		})
		if err != errPeek {
			t.Fatal(err)
		}
	}
	peek(&fromMemory)
	r.s.chains.invalidate() // between batches, on the committer's behalf: it is idle
	peek(&fromFile)
	if fmt.Sprintf("%+v", fromMemory) != fmt.Sprintf("%+v", fromFile) {
		t.Errorf("from memory:\n%+v\nfrom the file:\n%+v", fromMemory, fromFile)
	}
}

var errPeek = fmt.Errorf("peek only")

// TestChainCacheSeesOtherConnections: a family revoked by another
// connection (as another process would) is seen by the next exchange of a
// token whose chain was remembered.
func TestChainCacheSeesOtherConnections(t *testing.T) {
	r := newChainRig(t)
	r.warm()
	other, err := sql.Open("sqlite", dsn(r.path, "immediate", "busy_timeout(5000)"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(`UPDATE families SET revoked_at = ?, revoke_reason = 'elsewhere' WHERE id = 'f'`, time.Now().UnixMicro()); err != nil {
		t.Fatal(err)
	}
	if c := r.rotate(); !c.Family.Revoked() || c.Family.RevokeReason != "elsewhere" {
		t.Fatalf("exchange after another connection revoked the family saw %+v", c.Family)
	}
}

// TestChainCacheSeesWritesOutsideTheBatches: the store's own writes that
// do not go through the group commit (on the same writer connection, which
// data_version does not count) are seen by the next exchange: revoking the
// subject's sessions, new attributes, new user claims.
func TestChainCacheSeesWritesOutsideTheBatches(t *testing.T) {
	ctx := context.Background()
	t.Run("RevokeSubject", func(t *testing.T) {
		r := newChainRig(t)
		r.warm()
		if n, err := r.s.RevokeSubject(ctx, "alice", time.Now(), "disabled"); err != nil || n != 1 {
			t.Fatalf("RevokeSubject = %d, %v", n, err)
		}
		if c := r.rotate(); !c.Family.Revoked() {
			t.Fatalf("exchange after RevokeSubject saw a live family: %+v", c.Family)
		}
	})
	t.Run("PutAttributes", func(t *testing.T) {
		r := newChainRig(t)
		r.warm()
		if err := r.s.PutAttributes(ctx, "f", session.Attributes{Scope: "read", ConfidentialClient: true}); err != nil {
			t.Fatal(err)
		}
		if c := r.rotate(); c.Attributes.Scope != "read" || !c.Attributes.ConfidentialClient {
			t.Fatalf("exchange after PutAttributes saw %+v", c.Attributes)
		}
	})
	t.Run("SetUserClaims", func(t *testing.T) {
		r := newChainRig(t)
		if err := r.s.CreateUser(ctx, user.User{ID: "alice", Username: "alice", PasswordHash: "h", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		r.warm()
		if err := r.s.SetUserClaims(ctx, "alice", claims.Set{"role": "admin"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if c := r.rotate(); c.SubjectClaims["role"] != "admin" {
			t.Fatalf("exchange after SetUserClaims saw claims %v", c.SubjectClaims)
		}
	})
}

// TestChainCacheForgetsOnFailure: a request rolled back to its savepoint
// (here an insert that a constraint refuses) makes the committer forget
// what it remembered, so that no chain outlives a write that did not
// happen.
func TestChainCacheForgetsOnFailure(t *testing.T) {
	r := newChainRig(t)
	r.warm()
	now := time.Now().UTC()
	// A second family whose rotation inserts a hash that exists already.
	g := session.Family{ID: "g", Subject: "bob", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	gt := session.RefreshToken{Hash: storetest.Hash("g-0"), FamilyID: "g", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	if _, err := r.s.CreateFamilyCapped(t.Context(), g, gt, 0, ""); err != nil {
		t.Fatal(err)
	}
	r.warm() // the login forgot everything; learn again
	dup := &session.RefreshToken{Hash: r.cur.Hash, FamilyID: "g", Generation: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	err := r.s.Exchange(t.Context(), gt.Hash, func(session.Chain) (session.Change, error) {
		return session.Change{Consume: dup, ConsumedAt: now}, nil
	})
	if err == nil {
		t.Fatal("an insert of an existing hash succeeded")
	}
	before := r.hits()
	if c := r.rotate(); c.Token.Consumed() || c.Family.Revoked() {
		t.Fatalf("rotation after the failed request saw %+v", c)
	}
	if r.hits() != before {
		t.Error("the chain remembered before a rolled-back request was still used")
	}
}

// TestChainCacheBegin: a batch forgets every chain when another connection
// committed (data_version), when a statement outside the batches finished
// since the last batch, and while one is in flight: it may have run and
// released the connection without having counted itself done yet.
func TestChainCacheBegin(t *testing.T) {
	now := time.Now().UTC()
	prev := session.Chain{Family: session.Family{ID: "f"}, Token: session.RefreshToken{Hash: storetest.Hash("t0"), FamilyID: "f"}}
	next := session.RefreshToken{Hash: storetest.Hash("t1"), FamilyID: "f", Generation: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	for _, tt := range []struct {
		name   string
		change func(w *outsideWrites) int64 // returns the data_version of the next batch
		keeps  bool
	}{
		{"nothing", func(*outsideWrites) int64 { return 7 }, true},
		{"another connection committed", func(*outsideWrites) int64 { return 8 }, false},
		{"a statement finished", func(w *outsideWrites) int64 { w.inFlight.Add(1); w.done.Add(1); w.inFlight.Add(-1); return 7 }, false},
		{"a statement in flight", func(w *outsideWrites) int64 { w.inFlight.Add(1); return 7 }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var w outsideWrites
			c := newChainCache(&w)
			c.begin(7)
			c.rotated(prev, next)
			if _, ok := c.get(next.Hash); !ok {
				t.Fatal("a rotated chain is not remembered")
			}
			c.begin(tt.change(&w))
			if _, ok := c.get(next.Hash); ok != tt.keeps {
				t.Errorf("after %s the chain is remembered: %v, want %v", tt.name, ok, tt.keeps)
			}
		})
	}
}
