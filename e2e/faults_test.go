package e2e

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/store/postgres/pgtest"
)

// phases runs the load in the background and calls each step after its
// delay, in order, then stops the load.
func phases(t *testing.T, l *load, steps ...step) time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		l.run(ctx)
	}()
	for _, s := range steps {
		select {
		case <-time.After(s.after):
		case <-done:
			cancel()
			t.Fatal("the load stopped early")
		}
		t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), s.name)
		s.do(t)
	}
	cancel()
	<-done
	return time.Since(start)
}

// step is one event of a fault scenario.
type step struct {
	after time.Duration // since the previous step
	name  string
	do    func(t *testing.T)
}

func wait(d time.Duration, name string) step {
	return step{after: d, name: name, do: func(*testing.T) {}}
}

// TestReplicaKill9: one of three replicas is killed with SIGKILL under load,
// and started again later. Clients carry on through the other replicas: no
// session is lost, no request fails for good, the chains stay linear.
func TestReplicaKill9(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	srvs := pgReplicas(t, dsn, 3, "--access-ttl", "1s")
	r := newReplicas(srvs...)
	l := newLoad(t, r, 12, username, password)
	d := phases(t, l,
		step{2 * time.Second, "kill -9 replica0", func(t *testing.T) { srvs[0].kill() }},
		step{3 * time.Second, "restart replica0", func(t *testing.T) {
			if err := srvs[0].restart(); err != nil {
				t.Fatal(err)
			}
		}},
		wait(3*time.Second, "stop"),
	)
	l.report(t, d)
	l.refreshAll(t)
	checkChains(t, openDB(t, dsn), allFamilies(t, dsn))
}

// privatePostgres is a PostgreSQL of this test alone, started with
// scripts/postgres.sh, that the test may stop and start.
type privatePostgres struct {
	dir string
	dsn string
}

func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	if _, err := os.Stat("/usr/lib/postgresql/15/bin/initdb"); err != nil && os.Getenv("PG_BIN") == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no PostgreSQL binaries: %v", err)
		}
		t.Skipf("no PostgreSQL binaries: %v", err)
	}
	dir, err := os.MkdirTemp("", "silentrefresh-e2e-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &privatePostgres{dir: dir}
	t.Cleanup(func() {
		p.script(t, "destroy")
		os.RemoveAll(dir)
	})
	out := p.script(t, "start")
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "export "+pgtest.EnvDSN+"="); ok {
			p.dsn = strings.Trim(v, "'")
		}
	}
	if p.dsn == "" {
		t.Fatalf("scripts/postgres.sh start printed no DSN:\n%s", out)
	}
	return p
}

func (p *privatePostgres) script(t *testing.T, verb string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, "scripts", "postgres.sh"), verb)
	cmd.Env = append(os.Environ(), "SILENTREFRESH_PG_DIR="+p.dir)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("postgres.sh %s: %v\n%s", verb, err, ee.Stderr)
		}
		t.Fatalf("postgres.sh %s: %v", verb, err)
	}
	return string(out)
}

// TestPostgresRestart: PostgreSQL crashes (immediate shutdown) under load
// and comes back. While it is down the replicas answer 503 with a JSON
// error and Retry-After, quickly, and /healthz says so; after, everything
// recovers by itself and no session is lost.
func TestPostgresRestart(t *testing.T) {
	pg := startPrivatePostgres(t)
	srvs := pgReplicas(t, pg.dsn, 2, "--access-ttl", "1s")
	l := newLoad(t, newReplicas(srvs...), 8, username, password)
	hc := newHTTPClient()
	var downAt, upAt time.Time
	d := phases(t, l,
		step{2 * time.Second, "PostgreSQL: immediate shutdown", func(t *testing.T) {
			pg.script(t, "kill")
			downAt = time.Now()
		}},
		step{1500 * time.Millisecond, "check /healthz", func(t *testing.T) {
			for _, s := range srvs {
				start := time.Now()
				err := get(t.Context(), hc, s.url+"/healthz", "", nil)
				var ae *apiError
				if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.RetryAfter == "" {
					t.Errorf("%s/healthz with the database down = %v, want 503 with Retry-After", s.url, err)
				}
				if took := time.Since(start); took > 3*time.Second {
					t.Errorf("/healthz took %v with the database down", took)
				}
			}
		}},
		step{1500 * time.Millisecond, "PostgreSQL: start", func(t *testing.T) {
			pg.script(t, "start")
			upAt = time.Now()
			t.Logf("database was down %v", upAt.Sub(downAt).Round(time.Millisecond))
		}},
		wait(4*time.Second, "stop"),
	)
	l.report(t, d)
	if l.unavailable.Load() == 0 {
		t.Errorf("no 503 answers while the database was down")
	}
	if last := time.Unix(0, l.last503.Load()); last.After(upAt) {
		t.Logf("last 503 answered %v after the database was back", last.Sub(upAt).Round(time.Millisecond))
		if last.Sub(upAt) > 2*time.Second {
			t.Errorf("503s went on for %v after the database was back", last.Sub(upAt))
		}
	}
	if slowest := time.Duration(l.maxLatency.Load()); slowest > 6*time.Second {
		t.Errorf("slowest answer took %v: requests hang while the database is down", slowest)
	}
	for _, s := range srvs {
		if err := get(t.Context(), hc, s.url+"/healthz", "", nil); err != nil {
			t.Errorf("%s/healthz after recovery: %v", s.url, err)
		}
	}
	l.refreshAll(t)
	checkChains(t, openDB(t, pg.dsn), allFamilies(t, pg.dsn))
}

// TestSQLiteKill9: the single SQLite server is killed with SIGKILL under
// load and started again on the same file. Every session still refreshes
// and every chain is linear.
func TestSQLiteKill9(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "silentrefresh.db")
	addUser(t, db, username, password)
	srvs := startServers(t, 1, db, "--access-ttl", "1s")
	l := newLoad(t, newReplicas(srvs...), 8, username, password)
	d := phases(t, l,
		step{2 * time.Second, "kill -9 the server", func(t *testing.T) { srvs[0].kill() }},
		step{500 * time.Millisecond, "restart on the same file", func(t *testing.T) {
			if err := srvs[0].restart(); err != nil {
				t.Fatal(err)
			}
		}},
		wait(3*time.Second, "stop"),
	)
	l.report(t, d)
	if l.transport.Load() == 0 {
		t.Errorf("no transport errors: the kill did not happen under load")
	}
	l.refreshAll(t)
	srvs[0].kill()
	checkChains(t, openDB(t, db), l.sids())
}
