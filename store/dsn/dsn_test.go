package dsn_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/silentrefresh/silentrefresh/store/dsn"
)

func TestOpenSQLite(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{
		"sqlite:" + filepath.Join(dir, "a.db"),
		"sqlite://" + filepath.Join(dir, "b.db"),
		"file:" + filepath.Join(dir, "c.sqlite"),
		filepath.Join(dir, "d.db"),
	} {
		st, err := dsn.Open(t.Context(), name)
		if err != nil {
			t.Fatalf("Open(%q): %v", name, err)
		}
		if err := st.Ping(t.Context()); err != nil {
			t.Fatalf("Ping %q: %v", name, err)
		}
		st.Close()
	}
	for _, f := range []string{"a.db", "b.db", "c.sqlite", "d.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("no database file %s: %v", f, err)
		}
	}
}

func TestOpenRefusesWhatItCannotOpen(t *testing.T) {
	for _, tc := range []struct {
		name, dsn, want string
		unknown         bool
	}{
		{"no path", "sqlite:", "needs a file path", false},
		{"mysql", "mysql://root:hunter2@db/x", `"mysql://root:xxxxx@db/x"`, true},
		{"keyword form", "host=db password=hunter2", "password=xxxxx", true},
		{"empty", "", "unknown database", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := dsn.Open(t.Context(), tc.dsn)
			if err == nil {
				st.Close()
				t.Fatalf("Open(%q) succeeded", tc.dsn)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") ||
				errors.Is(err, dsn.ErrUnknown) != tc.unknown {
				t.Fatalf("Open(%q) = %v; want an error containing %s without the password", tc.dsn, err, tc.want)
			}
		})
	}
}

func TestOpenPostgres(t *testing.T) {
	url := os.Getenv("SILENTREFRESH_TEST_POSTGRES")
	if url == "" {
		t.Skip("SILENTREFRESH_TEST_POSTGRES is not set")
	}
	st, err := dsn.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:s3cret@db:5432/auth?sslmode=require": "postgres://app:xxxxx@db:5432/auth?sslmode=require",
		"postgresql://app@db/auth":                           "postgresql://app@db/auth",
		"postgres://db/auth?password=s3cret&sslmode=disable": "postgres://db/auth?password=xxxxx&sslmode=disable",
		"postgres://db/auth?sslpassword=s3cret":              "postgres://db/auth?sslpassword=xxxxx",
		"sqlite:silentrefresh.db":                            "sqlite:silentrefresh.db",
		"/var/lib/sr.db":                                     "/var/lib/sr.db",
		"host=db user=app password=s3cret dbname=auth":       "host=db user=app password=xxxxx dbname=auth",
		"host=db PASSWORD = 's3 cret' dbname=auth":           "host=db PASSWORD = xxxxx dbname=auth",
		"postgres://app:s3cret@db:bad-port/auth":             "postgres://(unparsable; hidden)",
	} {
		if got := dsn.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(dsn.Redact(in), "s3") {
			t.Errorf("Redact(%q) leaks the password", in)
		}
	}
}
