// Package pgtest gives tests a private PostgreSQL schema on the server named
// by the SILENTREFRESH_TEST_POSTGRES environment variable (a postgres:// DSN
// of a role that may create schemas; scripts/postgres.sh start prints one).
//
// Without that variable, tests that need PostgreSQL are skipped, except when
// CI=true: there a skipped PostgreSQL test would hide a broken setup, so it
// fails instead.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN is the environment variable that names the test server.
const EnvDSN = "SILENTREFRESH_TEST_POSTGRES"

// ServerDSN returns the DSN of the test server. Without one it skips the
// test, or fails it when the CI environment variable is "true".
func ServerDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is not set, and CI=true forbids skipping PostgreSQL tests (run: eval \"$(scripts/postgres.sh start)\")", EnvDSN)
		}
		tb.Skipf("%s is not set; run: eval \"$(scripts/postgres.sh start)\"", EnvDSN)
	}
	return dsn
}

// NewDSN creates an empty schema with a random name on the test server and
// returns a DSN whose search_path is that schema, so that every table a
// store creates lands there. The schema is dropped when the test ends.
// Schemas are much cheaper than databases (a CREATE DATABASE costs about
// 300 ms here with fsync on), which keeps the suites fast.
func NewDSN(tb testing.TB) string {
	tb.Helper()
	server := ServerDSN(tb)
	name := "t_" + randomHex(8)
	exec(tb, server, "CREATE SCHEMA "+name)
	tb.Cleanup(func() {
		exec(tb, server, "DROP SCHEMA "+name+" CASCADE")
	})
	return WithParam(tb, server, "search_path", name)
}

// WithParam returns dsn with the connection parameter key set to value.
func WithParam(tb testing.TB, dsn, key, value string) string {
	tb.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			tb.Fatalf("pgtest: parse %s: %v", EnvDSN, err)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " " + key + "=" + value
}

// Exec runs one statement on the database named by dsn, failing the test
// on error.
func Exec(tb testing.TB, dsn, sql string, args ...any) {
	tb.Helper()
	exec(tb, dsn, sql, args...)
}

func exec(tb testing.TB, dsn, sql string, args ...any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		tb.Fatalf("pgtest: %s: %v", sql, err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
