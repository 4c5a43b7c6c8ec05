package e2e

import (
	"bytes"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/token"
)

// TestSQLiteKill9AnsweredRotations: sessions rotate as fast as they can on
// one SQLite server, whose group commit puts many rotations in each
// transaction; the server is killed with SIGKILL in the middle and started
// again on the same file. Every rotation that was answered before the kill
// is in the file, and every session refreshes again with the newest token
// it was given (a rotation committed whose answer the kill cut off is
// answered again as a grace replay).
func TestSQLiteKill9AnsweredRotations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "silentrefresh.db")
	db := "sqlite:" + path
	addUser(t, db, username, password)
	srvs := startServers(t, 1, db, "--grace", "10m")
	srv := srvs[0]
	hc := newHTTPClient()
	ctx := t.Context()

	const sessions = 32
	type sess struct {
		sid      string
		answered []string // every refresh token the server answered, in order
	}
	ss := make([]*sess, sessions)
	for i := range ss {
		tok, err := login(ctx, hc, srv.url, username, password)
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		ss[i] = &sess{sid: tok.SID, answered: []string{tok.Refresh}}
	}

	// Each session rotates until the transport fails (the kill). The
	// kill comes once the sessions have rotated enough to be mid-load.
	var (
		rotations atomic.Int64
		enough    = make(chan struct{})
		once      sync.Once
		wg        sync.WaitGroup
		failures  = make(chan error, sessions)
	)
	for _, s := range ss {
		wg.Go(func() {
			for {
				tok, err := refresh(ctx, hc, srv.url, s.answered[len(s.answered)-1])
				if err != nil {
					if errors.As(err, new(*apiError)) {
						failures <- err // the server refused: not the kill
					}
					return
				}
				s.answered = append(s.answered, tok.Refresh)
				if rotations.Add(1) == 40*sessions {
					once.Do(func() { close(enough) })
				}
			}
		})
	}
	select {
	case <-enough:
	case err := <-failures:
		t.Fatalf("refresh refused before the kill: %v", err)
	}
	srv.kill()
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Errorf("refresh refused under load: %v", err)
	}
	t.Logf("%d rotations answered before the kill", rotations.Load())

	if err := srv.restart(); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i, s := range ss {
		toks, err := st.FamilyTokens(ctx, s.sid)
		if err != nil {
			t.Fatal(err)
		}
		stored := map[string]bool{}
		for _, tok := range toks {
			stored[string(tok.Hash)] = true
		}
		for g, rt := range s.answered {
			if !stored[string(token.HashRefreshToken(rt))] {
				t.Fatalf("session %d: answered token of generation %d is not in the file after the kill", i, g)
			}
		}
		// Answered rotations are a prefix of the chain; at most the one
		// in flight at the kill may have committed beyond it.
		if n := len(toks) - len(s.answered); n < 0 || n > 1 {
			t.Errorf("session %d: %d tokens stored, %d answered", i, len(toks), len(s.answered))
		}
		for g, rt := range s.answered {
			if !bytes.Equal(toks[g].Hash, token.HashRefreshToken(rt)) {
				t.Errorf("session %d: generation %d stored is not the one answered", i, g)
			}
		}
	}

	// Every session refreshes again from the newest token it was given.
	sids := make([]string, 0, sessions)
	for i, s := range ss {
		tok, err := refresh(ctx, hc, srv.url, s.answered[len(s.answered)-1])
		if err != nil {
			t.Errorf("session %d after the restart: %v", i, err)
			continue
		}
		if tok.SID != s.sid {
			t.Errorf("session %d: refreshed into session %s", i, tok.SID)
		}
		if _, err := refresh(ctx, hc, srv.url, tok.Refresh); err != nil {
			t.Errorf("session %d: the successor after the restart: %v", i, err)
		}
		sids = append(sids, s.sid)
	}
	srv.kill()
	if n := checkChains(t, st, sids); n == 0 {
		t.Error("no tokens checked")
	}
}
