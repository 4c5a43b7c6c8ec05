package session_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/internal/clock"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/token"
)

type fixture struct {
	engine *session.Engine
	store  *sqlite.Store
	clock  *clock.Fake
}

// newFixture returns an engine over a real SQLite file with a fake clock.
func newFixture(t *testing.T, cfg session.Config) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err := token.EnsureSigningKey(ctx, st, clk.Now()); err != nil {
		t.Fatal(err)
	}
	cfg.Now = clk.Now
	e, err := session.NewEngine(ctx, st, token.NewIssuer(st, "https://issuer.test", []string{"api"}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{engine: e, store: st, clock: clk}
}

func reason(err error) session.Reason {
	var ge *session.GrantError
	if errors.As(err, &ge) {
		return ge.Reason
	}
	return ""
}

func TestRefreshRules(t *testing.T) {
	ctx := context.Background()
	cfg := session.Config{AccessTTL: time.Minute, RefreshTTL: time.Hour, SessionTTL: 3 * time.Hour, Grace: 10 * time.Second}

	t.Run("rule 1: unknown token", func(t *testing.T) {
		f := newFixture(t, cfg)
		_, err := f.engine.Refresh(ctx, "no-such-token", "")
		if reason(err) != session.ReasonUnknown || !errors.Is(err, session.ErrInvalidGrant) {
			t.Fatalf("err = %v, want invalid_grant unknown", err)
		}
	})

	t.Run("rule 2: revoked family", func(t *testing.T) {
		f := newFixture(t, cfg)
		g, _ := f.engine.Login(ctx, "alice", "")
		if err := f.engine.Logout(ctx, g.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if _, err := f.engine.Refresh(ctx, g.RefreshToken, ""); reason(err) != session.ReasonRevoked {
			t.Fatalf("err = %v, want revoked", err)
		}
	})

	t.Run("rule 3: idle expiry", func(t *testing.T) {
		f := newFixture(t, cfg)
		g, _ := f.engine.Login(ctx, "alice", "")
		f.clock.Advance(time.Hour)
		if _, err := f.engine.Refresh(ctx, g.RefreshToken, ""); reason(err) != session.ReasonExpired {
			t.Fatalf("err = %v, want expired", err)
		}
	})

	t.Run("rule 3: absolute expiry despite activity", func(t *testing.T) {
		f := newFixture(t, cfg)
		g, _ := f.engine.Login(ctx, "alice", "")
		rt := g.RefreshToken
		for i := 0; i < 5; i++ { // refresh every 50 min: the idle limit never bites
			f.clock.Advance(50 * time.Minute)
			g2, err := f.engine.Refresh(ctx, rt, "")
			if i < 3 {
				if err != nil {
					t.Fatalf("refresh %d: %v", i, err)
				}
				if g2.AccessExpiresAt.After(g.Family.ExpiresAt) || g2.RefreshExpiresAt.After(g.Family.ExpiresAt) {
					t.Fatalf("tokens outlive the session: access %v refresh %v session %v", g2.AccessExpiresAt, g2.RefreshExpiresAt, g.Family.ExpiresAt)
				}
				rt = g2.RefreshToken
				continue
			}
			if reason(err) != session.ReasonExpired {
				t.Fatalf("refresh %d after %v: err = %v, want expired", i, f.clock.Now().Sub(g.Family.CreatedAt), err)
			}
		}
	})

	t.Run("rule 4: rotation", func(t *testing.T) {
		f := newFixture(t, cfg)
		g, _ := f.engine.Login(ctx, "alice", "")
		f.clock.Advance(time.Second)
		g2, err := f.engine.Refresh(ctx, g.RefreshToken, "")
		if err != nil {
			t.Fatal(err)
		}
		if g2.Outcome != session.OutcomeRotated || g2.RefreshToken == g.RefreshToken || g2.Family.ID != g.Family.ID {
			t.Fatalf("grant = %+v", g2)
		}
		if want := token.SuccessorToken(secret(t, f), g.RefreshToken, f.clock.Now()); g2.RefreshToken != want {
			t.Fatal("successor is not the issue time and HMAC-SHA256(secret, token)")
		}
		toks, err := f.store.FamilyTokens(ctx, g.Family.ID)
		if err != nil || len(toks) != 2 || toks[1].Generation != 1 || !toks[0].Consumed() {
			t.Fatalf("family tokens = %+v, %v", toks, err)
		}
	})

	t.Run("rule 5: grace replay answers the same successor", func(t *testing.T) {
		f := newFixture(t, cfg)
		g, _ := f.engine.Login(ctx, "alice", "")
		g1, err := f.engine.Refresh(ctx, g.RefreshToken, "")
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(10 * time.Second) // the edge of the window is inside it
		g2, err := f.engine.Refresh(ctx, g.RefreshToken, "")
		if err != nil {
			t.Fatal(err)
		}
		if g2.Outcome != session.OutcomeGraceReplay || g2.RefreshToken != g1.RefreshToken {
			t.Fatalf("replay = %v %q, want grace_replay with the same successor", g2.Outcome, g2.RefreshToken)
		}
		if g2.AccessToken == "" || g2.AccessToken == g1.AccessToken {
			t.Fatal("a grace replay must mint a new access token")
		}
		// The successor still works: the chain goes on.
		if _, err := f.engine.Refresh(ctx, g1.RefreshToken, ""); err != nil {
			t.Fatalf("successor after replay: %v", err)
		}
	})

	t.Run("rule 6: superseded inside grace revokes the family", func(t *testing.T) {
		// A thief holding T rotates it twice (T → S → S2); the owner then
		// presents T inside the grace window. The chain moved on past a
		// token somebody else still holds: the whole family goes.
		f := newFixture(t, cfg)
		owner, _ := f.engine.Login(ctx, "alice", "")
		s1, err := f.engine.Refresh(ctx, owner.RefreshToken, "")
		if err != nil {
			t.Fatal(err)
		}
		s2, err := f.engine.Refresh(ctx, s1.RefreshToken, "")
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(5 * time.Second)
		_, err = f.engine.Refresh(ctx, owner.RefreshToken, "")
		var ge *session.GrantError
		if !errors.As(err, &ge) || ge.Reason != session.ReasonSuperseded || !errors.Is(err, session.ErrInvalidGrant) {
			t.Fatalf("owner's replay: err = %v, want invalid_grant superseded", err)
		}
		if !ge.Revoked || ge.SessionID != owner.Family.ID {
			t.Errorf("GrantError = %+v, want Revoked for session %s", ge, owner.Family.ID)
		}
		fam, err := f.engine.Session(ctx, owner.Family.ID)
		if !errors.Is(err, session.ErrSessionEnded) || fam.RevokeReason != string(session.ReasonSuperseded) {
			t.Fatalf("session after superseded = %+v, %v; want ended, revoked for superseded", fam, err)
		}
		// The thief's newest token is refused, and so is every later try.
		for i, rt := range []string{s2.RefreshToken, s2.RefreshToken, s1.RefreshToken} {
			_, err := f.engine.Refresh(ctx, rt, "")
			if !errors.As(err, &ge) || ge.Reason != session.ReasonRevoked || ge.Revoked {
				t.Errorf("thief's refresh %d: err = %v, want revoked (and not revoked again)", i, err)
			}
			f.clock.Advance(time.Minute)
		}
	})

	t.Run("rule 6: a replay while the successor is unused is not a theft signal", func(t *testing.T) {
		f := newFixture(t, cfg)
		g, _ := f.engine.Login(ctx, "alice", "")
		g1, _ := f.engine.Refresh(ctx, g.RefreshToken, "")
		if r, err := f.engine.Refresh(ctx, g.RefreshToken, ""); err != nil || r.RefreshToken != g1.RefreshToken {
			t.Fatalf("grace replay: %v", err)
		}
		if _, err := f.engine.Session(ctx, g.Family.ID); err != nil {
			t.Fatalf("session ended by a grace replay: %v", err)
		}
	})

	t.Run("rule 7: reuse after grace revokes the family", func(t *testing.T) {
		f := newFixture(t, cfg)
		g, _ := f.engine.Login(ctx, "alice", "")
		g1, _ := f.engine.Refresh(ctx, g.RefreshToken, "")
		f.clock.Advance(10*time.Second + time.Microsecond)
		_, err := f.engine.Refresh(ctx, g.RefreshToken, "")
		var ge *session.GrantError
		if !errors.As(err, &ge) || ge.Reason != session.ReasonReused || ge.SessionID != g.Family.ID {
			t.Fatalf("err = %v, want reused naming the session", err)
		}
		if _, err := f.engine.Refresh(ctx, g1.RefreshToken, ""); reason(err) != session.ReasonRevoked {
			t.Fatalf("legitimate successor after reuse: err = %v, want revoked", err)
		}
		if _, err := f.engine.Session(ctx, g.Family.ID); !errors.Is(err, session.ErrSessionEnded) {
			t.Fatalf("Session after reuse: %v", err)
		}
	})

	t.Run("no grace: every second use is reuse", func(t *testing.T) {
		f := newFixture(t, session.Config{Grace: -1})
		g, _ := f.engine.Login(ctx, "alice", "")
		f.engine.Refresh(ctx, g.RefreshToken, "")
		if _, err := f.engine.Refresh(ctx, g.RefreshToken, ""); reason(err) != session.ReasonReused {
			t.Fatalf("err = %v, want reused", err)
		}
	})

	t.Run("client mismatch changes nothing", func(t *testing.T) {
		f := newFixture(t, cfg)
		g, _ := f.engine.Login(ctx, "alice", "app-a")
		if _, err := f.engine.Refresh(ctx, g.RefreshToken, "app-b"); reason(err) != session.ReasonClientMismatch {
			t.Fatalf("err = %v, want client_mismatch", err)
		}
		if _, err := f.engine.Refresh(ctx, g.RefreshToken, "app-a"); err != nil {
			t.Fatalf("right client after a mismatch: %v", err)
		}
	})
}

func secret(t *testing.T, f *fixture) []byte {
	t.Helper()
	s, err := f.store.LoadOrStoreSecret(context.Background(), "rotation", make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAccessTokenClaims(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, session.Config{AccessTTL: time.Minute, SessionTTL: 30 * time.Second})
	g, err := f.engine.Login(ctx, "alice", "cli")
	if err != nil {
		t.Fatal(err)
	}
	if !g.AccessExpiresAt.Equal(g.Family.ExpiresAt) {
		t.Fatalf("access token expires %v, after its session %v", g.AccessExpiresAt, g.Family.ExpiresAt)
	}
	v, err := token.NewVerifier(token.NewStoreKeySet(f.store, token.WithClock(f.clock.Now)),
		token.VerifierConfig{Issuer: "https://issuer.test", Audience: "api", Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(ctx, g.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.SessionID != g.Family.ID || c.ClientID != "cli" {
		t.Fatalf("claims = %+v", c)
	}
}

// TestConcurrentRefreshOneSuccessor presents one token from 64 goroutines
// at once: exactly one rotation happens and every caller gets the same
// successor. It fails under -race, or on the count, if the exchange is not
// atomic.
func TestConcurrentRefreshOneSuccessor(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, session.Config{})
	g, _ := f.engine.Login(ctx, "alice", "")
	const n = 64
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		grants  = make([]session.Grant, n)
		errs    = make([]error, n)
		rotated int
	)
	for i := range n {
		wg.Go(func() {
			<-start
			grants[i], errs[i] = f.engine.Refresh(ctx, g.RefreshToken, "")
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if grants[i].RefreshToken != grants[0].RefreshToken {
			t.Fatalf("caller %d got another successor", i)
		}
		if grants[i].Outcome == session.OutcomeRotated {
			rotated++
		}
	}
	if rotated != 1 {
		t.Fatalf("%d rotations, want exactly 1", rotated)
	}
	toks, _ := f.store.FamilyTokens(ctx, g.Family.ID)
	if len(toks) != 2 {
		t.Fatalf("family has %d tokens, want 2 (one chain, no fork)", len(toks))
	}
}

func TestLogoutAndRevokeAreIdempotent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, session.Config{})
	g, _ := f.engine.Login(ctx, "alice", "")
	for range 2 {
		if err := f.engine.Logout(ctx, g.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if err := f.engine.RevokeSession(ctx, g.Family.ID, "admin"); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.engine.Logout(ctx, "unknown"); err != nil {
		t.Fatal(err)
	}
	if err := f.engine.RevokeSession(ctx, "unknown", "admin"); err != nil {
		t.Fatal(err)
	}
	fam, err := f.store.Family(ctx, g.Family.ID)
	if err != nil || fam.RevokeReason != "logout" {
		t.Fatalf("family = %+v, %v; want the first revocation kept", fam, err)
	}
}

// slowWriter is a store whose Exchange waits for the writer (here: the
// clock moves on) before it reads the chain, as a busy single-writer
// database does.
type slowWriter struct {
	session.Store
	clock *clock.Fake
	wait  time.Duration
}

func (s *slowWriter) Exchange(ctx context.Context, hash []byte, decide func(session.Chain) (session.Change, error)) error {
	s.clock.Advance(s.wait)
	return s.Store.Exchange(ctx, hash, decide)
}

// The grace window counts from the rotation's commit, not from the moment
// its request arrived: a rotation that waited 3 s for the writer and whose
// answer was lost is answered again to the client's immediate retry, with
// a 2 s grace window.
func TestGraceCountsFromTheRotation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, session.Config{AccessTTL: time.Minute, RefreshTTL: time.Hour, SessionTTL: 3 * time.Hour, Grace: 2 * time.Second})
	slow := &slowWriter{Store: f.store, clock: f.clock, wait: 3 * time.Second}
	e, err := session.NewEngine(ctx, slow, token.NewIssuer(f.store, "https://issuer.test", []string{"api"}), session.Config{
		AccessTTL: time.Minute, RefreshTTL: time.Hour, SessionTTL: 3 * time.Hour, Grace: 2 * time.Second, Now: f.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	g, err := e.Login(ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.Refresh(ctx, g.RefreshToken, "") // its answer is lost
	if err != nil {
		t.Fatal(err)
	}
	slow.wait = 0
	f.clock.Advance(100 * time.Millisecond)
	again, err := e.Refresh(ctx, g.RefreshToken, "")
	if err != nil {
		t.Fatalf("the retry 100ms after the rotation committed: %v, want a grace replay", err)
	}
	if again.RefreshToken != first.RefreshToken {
		t.Error("the grace replay answered another successor")
	}
}

// TestTokensOfTheEarlierFormat: a session whose tokens were issued before
// refresh tokens carried their issue time (43 characters, hashed whole,
// successors the bare HMAC) keeps working across the upgrade: its token
// rotates, and a retry inside the grace window of a rotation made by the
// earlier format gets that very successor back, not a superseded refusal.
func TestTokensOfTheEarlierFormat(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, session.Config{AccessTTL: time.Minute, RefreshTTL: time.Hour, SessionTTL: 3 * time.Hour, Grace: 10 * time.Second})
	key := secret(t, f)
	legacySuccessor := func(tok string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(tok))
		return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	open := func(id, tok string) {
		t.Helper()
		now := f.clock.Now()
		fam := session.Family{ID: id, Subject: "alice", CreatedAt: now, ExpiresAt: now.Add(3 * time.Hour)}
		first := session.RefreshToken{Hash: token.HashRefreshToken(tok), FamilyID: id, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
		if _, err := f.store.CreateFamilyCapped(ctx, fam, first, 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	old := "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG" // 43 characters
	if len(old) != 43 {
		t.Fatal(len(old))
	}

	// An old token rotates to a successor of the new format.
	open("fam-old-1", old)
	g, err := f.engine.Refresh(ctx, old, "")
	if err != nil || g.Outcome != session.OutcomeRotated || len(g.RefreshToken) != 54 {
		t.Fatalf("refresh of an old token = %+v, %v", g, err)
	}
	if g2, err := f.engine.Refresh(ctx, g.RefreshToken, ""); err != nil || g2.Outcome != session.OutcomeRotated {
		t.Fatalf("refresh of its successor = %+v, %v", g2, err)
	}

	// A rotation the earlier format made, then the client's retry.
	old2 := "Z123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
	open("fam-old-2", old2)
	succ := legacySuccessor(old2)
	now := f.clock.Now()
	err = f.store.Exchange(ctx, token.HashRefreshToken(old2), func(c session.Chain) (session.Change, error) {
		return session.Change{ConsumedAt: now, Consume: &session.RefreshToken{
			Hash: token.HashRefreshToken(succ), FamilyID: c.Family.ID, Generation: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour),
		}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	g, err = f.engine.Refresh(ctx, old2, "")
	if err != nil || g.Outcome != session.OutcomeGraceReplay || g.RefreshToken != succ {
		t.Fatalf("retry of a rotation of the earlier format = %+v, %v; want the replay of %q", g, err, succ)
	}
	if g, err := f.engine.Refresh(ctx, succ, ""); err != nil || g.Outcome != session.OutcomeRotated {
		t.Fatalf("refresh of the old successor = %+v, %v", g, err)
	}
}
