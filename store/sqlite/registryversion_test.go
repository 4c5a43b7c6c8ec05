package sqlite

import (
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/silentrefresh/silentrefresh/registry"
	"github.com/silentrefresh/silentrefresh/store/storetest"
)

// rawDB opens a connection to the file that bypasses the store, as an
// operator's sqlite3 shell would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, "immediate", "busy_timeout(10000)"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func registryVersion(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var v int64
	if err := db.QueryRow(`SELECT version FROM registry_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRegistryVersionTriggers: every change to the clients table, and
// only a change, bumps the version, in its transaction.
func TestRegistryVersionTriggers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "version.db")
	s := openTest(t, path)
	defer s.Close()
	db := rawDB(t, path)
	ctx := t.Context()
	v0 := registryVersion(t, db)
	steps := []struct {
		sql  string
		bump int64
	}{
		{`INSERT INTO clients (id, secret_hash, created_at) VALUES ('a', '', 1)`, 1},
		{`INSERT INTO clients (id, secret_hash, created_at) VALUES ('a', '', 1) ON CONFLICT (id) DO NOTHING`, 0},
		{`INSERT INTO clients (id, secret_hash, created_at) VALUES ('a', 'h', 1) ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash`, 1},
		{`INSERT OR REPLACE INTO clients (id, secret_hash, created_at) VALUES ('a', 'h2', 1)`, 1},
		{`UPDATE clients SET scopes = '["read"]' WHERE id = 'a'`, 1},
		{`UPDATE clients SET scopes = '[]' WHERE id = 'nobody'`, 0},
		{`INSERT INTO clients (id, secret_hash, created_at) VALUES ('b', '', 1), ('c', '', 1)`, 2},
		{`DELETE FROM clients`, 3}, // no truncate optimisation while triggers exist
		{`DELETE FROM clients WHERE id = 'a'`, 0},
	}
	want := v0
	for _, st := range steps {
		if _, err := db.ExecContext(ctx, st.sql); err != nil {
			t.Fatalf("%s: %v", st.sql, err)
		}
		want += st.bump
		if got := registryVersion(t, db); got != want {
			t.Fatalf("after %s: version %d, want %d", st.sql, got, want)
		}
	}
	// A rolled-back change bumps nothing.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO clients (id, secret_hash, created_at) VALUES ('z', '', 1)`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := registryVersion(t, db); got != want {
		t.Fatalf("after a rollback: version %d, want %d", got, want)
	}
	// Through the store.
	if err := s.AddClient(ctx, registry.Client{ID: "x", CreatedAt: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddClient(ctx, registry.Client{ID: "x", CreatedAt: storetest.T0}); !errors.Is(err, registry.ErrExists) {
		t.Fatalf("AddClient twice = %v", err)
	}
	if err := s.RemoveClient(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if got := registryVersion(t, db); got != want+2 {
		t.Fatalf("after AddClient, a refused AddClient and RemoveClient: version %d, want %d", got, want+2)
	}
}

// TestRegistryVersionMigrationDown: migration 00005 goes down to the
// schema of 00004 (no table, no trigger) and up again.
func TestRegistryVersionMigrationDown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "version.db")
	openTest(t, path).Close()
	db := rawDB(t, path)
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	objects := func() int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'registry_version' OR name LIKE 'clients\_%\_version' ESCAPE '\'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := objects(); n != 4 {
		t.Fatalf("%d registry version objects after Up, want 4", n)
	}
	if _, err := p.DownTo(t.Context(), 4); err != nil {
		t.Fatal(err)
	}
	if n := objects(); n != 0 {
		t.Fatalf("%d registry version objects after Down, want 0", n)
	}
	if _, err := db.Exec(`INSERT INTO clients (id, secret_hash, created_at) VALUES ('a', '', 1)`); err != nil {
		t.Fatalf("a client change after Down: %v", err)
	}
	if _, err := p.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := objects(); n != 4 {
		t.Fatalf("%d registry version objects after Up again, want 4", n)
	}
}
