package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store/storetest"
)

// openCacheTest opens a store on a new file with one live family "1".
func openCacheTest(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.families == nil {
		t.Fatal("no family cache: the shared-memory file cannot be read")
	}
	f := session.Family{ID: "1", Subject: "alice", CreatedAt: storetest.T0, ExpiresAt: storetest.T0.Add(time.Hour)}
	first := session.RefreshToken{Hash: storetest.Hash("rt-1"), FamilyID: "1", IssuedAt: storetest.T0, ExpiresAt: storetest.T0.Add(time.Hour)}
	if _, err := s.CreateFamilyCapped(t.Context(), f, first, 0, ""); err != nil {
		t.Fatal(err)
	}
	return s, path
}

// liveAndCached reads family 1 twice and fails unless it is live and the
// second read is answered from memory (so that the test that follows
// would catch a stale entry).
func liveAndCached(t *testing.T, s *Store) {
	t.Helper()
	for range 2 {
		f, err := s.Family(t.Context(), "1")
		if err != nil || f.Revoked() {
			t.Fatalf("Family = %+v, %v; want live", f, err)
		}
	}
	if _, hit, _, _ := s.families.get("1"); !hit {
		t.Fatal("the family is not answered from memory while nothing commits")
	}
}

func wantRevoked(t *testing.T, s *Store, reason string) {
	t.Helper()
	f, err := s.Family(t.Context(), "1")
	if err != nil {
		t.Fatal(err)
	}
	if !f.Revoked() || f.RevokeReason != reason {
		t.Fatalf("Family after the revocation = %+v, want revoked for %q", f, reason)
	}
}

// TestFamilyCacheRevokedInProcess: a revocation through the store is seen
// by the next lookup.
func TestFamilyCacheRevokedInProcess(t *testing.T) {
	s, _ := openCacheTest(t)
	liveAndCached(t, s)
	if err := s.RevokeFamily(t.Context(), "1", storetest.T0.Add(time.Minute), "logout"); err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, s, "logout")
}

// TestFamilyCacheRevokedByAnotherConnection: a write that bypasses the
// store (another connection of this process, plain SQL) is seen too.
func TestFamilyCacheRevokedByAnotherConnection(t *testing.T) {
	s, path := openCacheTest(t)
	liveAndCached(t, s)
	db, err := sql.Open("sqlite", dsn(path, "immediate", "busy_timeout(10000)"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(),
		`UPDATE families SET revoked_at = ?, revoke_reason = 'admin' WHERE id = '1'`, storetest.T0.Add(time.Minute).UnixMicro()); err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, s, "admin")
}

// TestFamilyCacheRevokedByAnotherProcess: a revocation committed by
// another process on the same file is seen by the next lookup.
func TestFamilyCacheRevokedByAnotherProcess(t *testing.T) {
	s, path := openCacheTest(t)
	liveAndCached(t, s)
	c := startChild(t, "revoke", path, 1)
	release([]*child{c})
	if got := c.line(t); got != "revoked" {
		t.Fatalf("child: %s", got)
	}
	wantRevoked(t, s, "admin")
}

// TestFamilyCacheAnyCommitInvalidates: a commit that revokes nothing (a
// rotation) still makes the entry stale; the next lookup reads the file.
func TestFamilyCacheAnyCommitInvalidates(t *testing.T) {
	s, _ := openCacheTest(t)
	liveAndCached(t, s)
	at := storetest.T0.Add(time.Minute)
	next := &session.RefreshToken{Hash: storetest.Hash("rt-2"), FamilyID: "1", Generation: 1, IssuedAt: at, ExpiresAt: at.Add(time.Hour)}
	if err := s.Exchange(t.Context(), storetest.Hash("rt-1"), func(session.Chain) (session.Change, error) {
		return session.Change{Consume: next, ConsumedAt: at}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, hit, _, _ := s.families.get("1"); hit {
		t.Error("an entry read before a commit is still answered after it")
	}
}

// BenchmarkFamily is the session check: one family read from 64
// goroutines, answered from memory (no commit meanwhile) or, with the
// cache off, by a statement on the reader pool each time.
func BenchmarkFamily(b *testing.B) {
	for _, cached := range []bool{true, false} {
		b.Run(map[bool]string{true: "cached", false: "uncached"}[cached], func(b *testing.B) {
			s := openBench(b, defaultOptions())
			c := newChain(b, s)
			id := c.cur.FamilyID
			if !cached {
				s.families = nil
			}
			b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Family(context.Background(), id); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
