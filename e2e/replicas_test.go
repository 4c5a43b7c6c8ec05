package e2e

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/store/dsn"
	"github.com/silentrefresh/silentrefresh/store/postgres/pgtest"
)

const (
	username = "alice"
	password = "correct horse battery staple"
)

// pgReplicas starts n replicas at once on a new, empty schema (so their
// migrations race and the migration lock must hold), with a user.
func pgReplicas(t *testing.T, dsn string, n int, extra ...string) []*server {
	t.Helper()
	srvs := startServers(t, n, dsn, extra...)
	addUser(t, dsn, username, password)
	return srvs
}

// openDB opens the store the servers share, for checks.
func openDB(t *testing.T, db string) store.Store {
	t.Helper()
	st, err := dsn.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// allFamilies lists every family in the database.
func allFamilies(t *testing.T, dsn string) []string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	rows, err := conn.Query(t.Context(), `SELECT id FROM families ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestReplicasSteadyLoad: three replicas on one database, sessions whose
// two tabs send every request to a random replica, 1 s access tokens. No
// request may fail, and every family in the database must be one linear
// chain.
func TestReplicasSteadyLoad(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	srvs := pgReplicas(t, dsn, 3, "--access-ttl", "1s")
	l := newLoad(t, newReplicas(srvs...), 16, username, password)

	d := loadDuration(t)
	ctx, cancel := context.WithTimeout(t.Context(), d)
	l.run(ctx)
	cancel()
	l.report(t, d)
	if n := l.transport.Load() + l.unavailable.Load(); n > 0 {
		t.Errorf("%d transport errors or 503s with every replica and the database up", n)
	}
	l.refreshAll(t)

	ids := allFamilies(t, dsn)
	if len(ids) != len(l.sessions) {
		t.Errorf("%d families in the database, want %d", len(ids), len(l.sessions))
	}
	n := checkChains(t, openDB(t, dsn), ids)
	t.Logf("%d families, %d refresh tokens, all linear chains", len(ids), n)
}

// TestReplicasOneTokenStorm: 64 callers present one refresh token at the
// same instant through three replicas. All get the same successor (grace
// replay), the database holds one successor, and the session lives on.
func TestReplicasOneTokenStorm(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	srvs := pgReplicas(t, dsn, 3)
	hc := newHTTPClient()
	tok, err := login(t.Context(), hc, srvs[0].url, username, password)
	if err != nil {
		t.Fatal(err)
	}

	const n = 64
	got := make([]tokens, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = refresh(t.Context(), hc, srvs[i%len(srvs)].url, tok.Refresh)
		})
	}
	close(start)
	wg.Wait()

	successors := map[string]int{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("caller %d: %v", i, errs[i])
			continue
		}
		successors[got[i].Refresh]++
	}
	if len(successors) != 1 {
		t.Errorf("callers got %d different successors, want 1", len(successors))
	}
	st := openDB(t, dsn)
	toks, err := st.FamilyTokens(t.Context(), tok.SID)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 2 {
		t.Errorf("family has %d tokens after the storm, want 2 (the login token and one successor)", len(toks))
	}
	checkChains(t, st, []string{tok.SID})

	next, err := refresh(t.Context(), hc, srvs[2].url, got[0].Refresh)
	if err != nil {
		t.Fatalf("refreshing the successor: %v", err)
	}
	if err := get(t.Context(), hc, srvs[1].url+"/api/heartbeat", next.Access, nil); err != nil {
		t.Errorf("heartbeat after the storm: %v", err)
	}
}

// TestRevocationAcrossReplicas: a logout on one replica, or a reuse
// detected on one replica, makes heartbeat on another replica answer 401
// within one second. The server checks the session on every
// session-checked request; on PostgreSQL B answers that check from its
// family cache, warmed by two heartbeats before the revocation, until the
// revocation's notification reaches B's listener, so the delay logged is
// the notification's.
func TestRevocationAcrossReplicas(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	// No grace window: presenting a consumed token again is a reuse at once.
	srvs := pgReplicas(t, dsn, 3, "--grace", "0")
	a, b, c := srvs[0].url, srvs[1].url, srvs[2].url
	hc := newHTTPClient()
	ctx := t.Context()

	tests := []struct {
		name   string
		revoke func(t *testing.T, tok tokens) (access string)
	}{
		{"logout on A", func(t *testing.T, tok tokens) string {
			if err := postJSON(ctx, hc, a+"/api/auth/logout", map[string]string{"refreshToken": tok.Refresh}, nil); err != nil {
				t.Fatalf("logout: %v", err)
			}
			return tok.Access
		}},
		{"reuse detected on A", func(t *testing.T, tok tokens) string {
			next, err := refresh(ctx, hc, c, tok.Refresh)
			if err != nil {
				t.Fatal(err)
			}
			if err := get(ctx, hc, b+"/api/heartbeat", next.Access, nil); err != nil {
				t.Fatalf("heartbeat before the reuse: %v", err)
			}
			var ae *apiError
			if _, err := refresh(ctx, hc, a, tok.Refresh); !errors.As(err, &ae) || ae.Desc != "reused" {
				t.Fatalf("presenting a rotated token again = %v, want invalid_grant reused", err)
			}
			return next.Access
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := login(ctx, hc, a, username, password)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the first fills B's cache, the second is answered from it
				if err := get(ctx, hc, b+"/api/heartbeat", tok.Access, nil); err != nil {
					t.Fatalf("heartbeat on B before: %v", err)
				}
			}
			access := tc.revoke(t, tok)
			revoked := time.Now()
			var last error
			for stale := 0; time.Since(revoked) < time.Second; stale++ {
				last = get(ctx, hc, b+"/api/heartbeat", access, nil)
				var ae *apiError
				if errors.As(last, &ae) && ae.Status == http.StatusUnauthorized {
					t.Logf("heartbeat on B answered 401 %v after the revocation on A, after %d answers from before it",
						time.Since(revoked).Round(time.Microsecond), stale)
					return
				}
			}
			t.Errorf("heartbeat on B still answers %v one second after the revocation on A", last)
		})
	}
}
