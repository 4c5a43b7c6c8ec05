// Package dsn opens the storage backend a data source name names, for the
// CLI and the tests that start servers by DSN:
//
//	sqlite:PATH, sqlite://PATH, file:PATH, or a path ending .db   embedded SQLite (store/sqlite)
//	postgres://..., postgresql://...                            PostgreSQL (store/postgres)
//
// Redact hides the secrets of a DSN before it is printed or logged.
package dsn

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/store/postgres"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
)

// Default is the embedded database in the working folder.
const Default = "sqlite:silentrefresh.db"

// ErrUnknown is wrapped by the error of Open for a DSN that names no
// backend.
var ErrUnknown = errors.New("dsn: unknown database")

// Open opens the store dsn names (see the package doc). The error of a DSN
// that names no backend wraps ErrUnknown and shows the DSN redacted.
func Open(ctx context.Context, dsn string) (store.Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		st, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	if path, ok := SQLitePath(dsn); ok {
		return openSQLite(ctx, path)
	}
	return nil, fmt.Errorf("%w %q: use sqlite:PATH or postgres://USER@HOST/DB", ErrUnknown, Redact(dsn))
}

// SQLitePath is the file path of a SQLite DSN (sqlite://PATH, sqlite:PATH,
// file:PATH, or a bare PATH ending in .db), and whether dsn is one.
func SQLitePath(dsn string) (string, bool) {
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
		return nil, errors.New("dsn: sqlite needs a file path, e.g. sqlite:silentrefresh.db")
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// secretParams are the query parameters of a URL DSN that hold secrets.
var secretParams = []string{"password", "sslpassword"}

// keywordSecret matches password=VALUE in a keyword/value DSN such as
// "host=db password='s e c r e t'".
var keywordSecret = regexp.MustCompile(`(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)`)

// Redact returns dsn with its password, if any, replaced by "xxxxx": the
// user-info password of a URL ((*url.URL).Redacted), password query
// parameters, and password=VALUE of a keyword/value string. A URL that
// does not parse is reduced to its scheme.
func Redact(dsn string) string {
	if scheme, _, ok := strings.Cut(dsn, "://"); ok {
		u, err := url.Parse(dsn)
		if err != nil {
			return scheme + "://(unparsable; hidden)"
		}
		if q := u.Query(); len(q) > 0 {
			changed := false
			for _, p := range secretParams {
				if q.Has(p) {
					q.Set(p, "xxxxx")
					changed = true
				}
			}
			if changed {
				u.RawQuery = q.Encode()
			}
		}
		return u.Redacted()
	}
	return keywordSecret.ReplaceAllString(dsn, "${1}xxxxx")
}
