package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/store/postgres"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
)

// defaultDSN is the embedded database in the working folder.
const defaultDSN = "sqlite:silentrefresh.db"

// openStore opens the database a DSN names:
//
//	sqlite:PATH, sqlite://PATH, file:PATH, or a path ending .db   embedded SQLite
//	postgres://..., postgresql://...                            PostgreSQL
func openStore(ctx context.Context, dsn string) (store.Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return postgres.Open(ctx, dsn)
	}
	if path, ok := sqlitePath(dsn); ok {
		return openSQLite(ctx, path)
	}
	return nil, fmt.Errorf("--db %q: unknown database; use sqlite:PATH or postgres://USER@HOST/DB", redactDSN(dsn))
}

// sqlitePath is the file path of a SQLite DSN, and whether dsn is one.
func sqlitePath(dsn string) (string, bool) {
	for _, prefix := range []string{"sqlite://", "sqlite:", "file:"} {
		if p, ok := strings.CutPrefix(dsn, prefix); ok {
			return p, true
		}
	}
	if strings.HasSuffix(dsn, ".db") && !strings.Contains(dsn, "://") {
		return dsn, true
	}
	return "", false
}

func openSQLite(ctx context.Context, path string) (store.Store, error) {
	if path == "" {
		return nil, fmt.Errorf("--db sqlite: needs a file path, e.g. sqlite:silentrefresh.db")
	}
	return sqlite.Open(ctx, path)
}

// redactDSN hides a password in a DSN before it is printed.
func redactDSN(dsn string) string {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return dsn
	}
	creds, host, ok := strings.Cut(rest, "@")
	if !ok {
		return dsn
	}
	if u, _, hasPass := strings.Cut(creds, ":"); hasPass {
		return scheme + "://" + u + ":xxxxx@" + host
	}
	return dsn
}
