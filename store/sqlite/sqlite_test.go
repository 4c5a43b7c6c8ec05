package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/internal/clock"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/store/storetest"
	"github.com/silentrefresh/silentrefresh/token"
)

// harness opens each store on a new file in t.TempDir.
var harness = storetest.Harness{
	Open: func(t *testing.T) store.Store {
		return openTest(t, filepath.Join(t.TempDir(), "test.db"))
	},
	Reopen: func(t *testing.T, s store.Store) store.Store {
		return openTest(t, s.(*Store).Path())
	},
}

func openTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, harness)
}

func TestOpenPaths(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
	}{
		{"missing parents", filepath.Join(dir, "a", "b", "c", "s.db")},
		{"odd characters", filepath.Join(dir, "we?ird #dir %41", "s?x=1#frag.db")},
		{"relative", "rel/s.db"},
	}
	t.Chdir(dir)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(ctx, tc.path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			abs, _ := filepath.Abs(tc.path)
			if s.Path() != abs {
				t.Errorf("Path() = %q, want %q", s.Path(), abs)
			}
			for _, p := range []string{abs, abs + "-wal"} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatalf("database file not at the given path: %v", err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s has mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
				}
			}
		})
	}
	for _, bad := range []string{"", ":memory:", "file:x.db?mode=memory"} {
		if s, err := Open(ctx, bad); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
}

func TestPragmas(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "p.db"))
	defer s.Close()
	tests := []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{s.w, "journal_mode", "wal"},
		{s.w, "synchronous", "2"}, // FULL
		{s.w, "foreign_keys", "1"},
		{s.w, "busy_timeout", "10000"},
		{s.r, "journal_mode", "wal"},
		{s.r, "busy_timeout", "10000"},
		{s.r, "query_only", "1"},
	}
	for _, tc := range tests {
		var got string
		if err := tc.db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s = %s, want %s", tc.pragma, got, tc.want)
		}
	}
	if _, err := s.r.ExecContext(ctx, "DELETE FROM users"); err == nil {
		t.Error("a reader connection could write")
	}
}

func TestTimesAreMicroseconds(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "t.db"))
	defer s.Close()
	at := time.Date(2030, 1, 1, 0, 0, 0, 123456789, time.UTC) // nanoseconds are dropped
	f := session.Family{ID: "f", Subject: "s", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
	tok := session.RefreshToken{Hash: storetest.Hash("t"), FamilyID: "f", IssuedAt: at, ExpiresAt: at.Add(time.Hour)}
	if _, err := s.CreateFamilyCapped(ctx, f, tok, 0, ""); err != nil {
		t.Fatal(err)
	}
	var typ string
	var v int64
	var revoked sql.NullInt64
	if err := s.r.QueryRowContext(ctx, "SELECT typeof(created_at), created_at, revoked_at FROM families").Scan(&typ, &v, &revoked); err != nil {
		t.Fatal(err)
	}
	if typ != "integer" || v != at.UnixMicro() || revoked.Valid {
		t.Errorf("created_at stored as %s %d, revoked_at %v; want integer %d and NULL", typ, v, revoked, at.UnixMicro())
	}
	got, err := s.Family(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	if want := at.Truncate(time.Microsecond); !got.CreatedAt.Equal(want) {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want)
	}
}

func TestErrorsAfterClose(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "c.db"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{
		"Ping":   s.Ping(ctx),
		"Family": func() error { _, err := s.Family(ctx, "x"); return err }(),
		"Exchange": s.Exchange(ctx, storetest.Hash("x"), func(session.Chain) (session.Change, error) {
			return session.Change{}, nil
		}),
		"RevokeFamily": s.RevokeFamily(ctx, "x", time.Now(), "logout"),
	}
	for name, err := range checks {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s after Close: %v, want ErrUnavailable", name, err)
		}
	}
}

// TestPingBesideAWriteBatch: while a write batch holds the writer
// connection and the write lock, Ping still answers, through a reader. A
// health check does not queue behind writes.
func TestPingBesideAWriteBatch(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "p.db"))
	defer s.Close()
	holding, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s.write(context.Background(), "hold", func(ctx context.Context, tx *batchTx) (error, error) {
			if _, err := tx.exec(ctx, qRevoke, "held", micros(time.Now()), "no-such-family"); err != nil {
				return nil, err
			}
			close(holding)
			<-release
			return nil, nil
		})
		done <- err
	}()
	<-holding
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := s.Ping(ctx)
	cancel()
	close(release)
	if err != nil {
		t.Errorf("Ping while a batch holds the writer: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the holding batch: %v", err)
	}
}

// TestNoPlaintextAtRest logs in and refreshes through the engine, then
// looks for every refresh token handed out, as text and as its decoded
// bytes, in the database file and its write-ahead log.
func TestNoPlaintextAtRest(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plain.db")
	s := openTest(t, path)
	clk := clock.NewFake(storetest.T0)
	e, err := session.NewEngine(ctx, s, storetest.CountingMinter(), session.Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for range 10 {
		g, err := e.Login(ctx, "alice", "web")
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, g.RefreshToken)
		for range 3 {
			clk.Advance(time.Minute)
			prev := g.RefreshToken
			if g, err = e.Refresh(ctx, prev, "web"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Refresh(ctx, prev, "web"); err != nil { // grace replay
				t.Fatal(err)
			}
			tokens = append(tokens, g.RefreshToken)
		}
	}

	search := func(when string) {
		t.Helper()
		var files []byte
		for _, p := range []string{path, path + "-wal"} {
			b, err := os.ReadFile(p)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			files = append(files, b...)
		}
		hashes := 0
		for _, tok := range tokens {
			raw, err := base64.RawURLEncoding.DecodeString(tok)
			if err != nil || len(raw) < 16 {
				t.Fatalf("refresh token %q is not base64url", tok)
			}
			if bytes.Contains(files, []byte(tok)) || bytes.Contains(files, raw) {
				t.Fatalf("%s: a refresh token is stored in plaintext", when)
			}
			if bytes.Contains(files, token.HashRefreshToken(tok)) {
				hashes++
			}
		}
		// The search looked at the right bytes: the hashes are there.
		if hashes != len(tokens) {
			t.Fatalf("%s: found %d of %d token hashes in the files", when, hashes, len(tokens))
		}
	}
	search("open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	search("closed")
}

// TestDeleteExpiredBatches removes more families than one batch holds.
func TestDeleteExpiredBatches(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "d.db"))
	defer s.Close()
	const expired, live = 2*deleteBatch + 7, 3
	// Many families and tokens in one statement each, to keep the test fast.
	for _, q := range []string{
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		 INSERT INTO families (id, subject, created_at, expires_at) SELECT 'f' || i, 's', 1, i FROM n`,
		`INSERT INTO refresh_tokens (hash, family_id, generation, issued_at, expires_at)
		 SELECT randomblob(32), id, 0, 1, 2 FROM families`,
	} {
		if _, err := s.w.ExecContext(ctx, q, expired+live); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteExpired(ctx, time.UnixMicro(expired+1))
	if err != nil || n != expired {
		t.Fatalf("DeleteExpired = %d, %v; want %d", n, err, expired)
	}
	var fams, toks int
	if err := s.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM families), (SELECT count(*) FROM refresh_tokens)`).Scan(&fams, &toks); err != nil {
		t.Fatal(err)
	}
	if fams != live || toks != live {
		t.Errorf("left %d families and %d tokens, want %d of each", fams, toks, live)
	}
}

func TestCloseTwice(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "c.db"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
