package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/internal/clock"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/token"
)

// MinterFunc adapts a function to session.Minter.
type MinterFunc func(ctx context.Context, c token.Claims) (string, error)

// Mint calls f.
func (f MinterFunc) Mint(ctx context.Context, c token.Claims) (string, error) { return f(ctx, c) }

// CountingMinter returns a Minter whose access tokens are "at-N" for N = 1,
// 2, ...: distinct, and meaningless to anything but a test.
func CountingMinter() session.Minter {
	var n atomic.Int64
	return MinterFunc(func(context.Context, token.Claims) (string, error) {
		return fmt.Sprintf("at-%d", n.Add(1)), nil
	})
}

// engineConfig is the Config of the engine tests; Now is set by newEngine.
var engineConfig = session.Config{
	AccessTTL:  10 * time.Minute,
	RefreshTTL: time.Hour,
	SessionTTL: 3 * time.Hour,
	Grace:      10 * time.Second,
}

// newEngine returns an engine over st with the given clock.
func newEngine(t *testing.T, st store.Store, clk *clock.Fake, cfg session.Config) *session.Engine {
	t.Helper()
	cfg.Now = clk.Now
	e, err := session.NewEngine(context.Background(), st, CountingMinter(), cfg)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	return e
}

// reasonOf is the Reason of a refused refresh, or "" for another error.
func reasonOf(err error) session.Reason {
	var ge *session.GrantError
	if errors.As(err, &ge) {
		return ge.Reason
	}
	return ""
}

func login(t *testing.T, e *session.Engine) session.Grant {
	t.Helper()
	g, err := e.Login(context.Background(), "alice", "web")
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if g.Outcome != session.OutcomeLogin || g.RefreshToken == "" || g.AccessToken == "" {
		t.Fatalf("Login = %+v", g)
	}
	return g
}

func refresh(t *testing.T, e *session.Engine, rt string, want session.Outcome) session.Grant {
	t.Helper()
	g, err := e.Refresh(context.Background(), rt, "web")
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if g.Outcome != want {
		t.Fatalf("Refresh outcome = %s, want %s", g.Outcome, want)
	}
	return g
}

func refuse(t *testing.T, e *session.Engine, rt string, want session.Reason) {
	t.Helper()
	g, err := e.Refresh(context.Background(), rt, "web")
	if got := reasonOf(err); got != want || !errors.Is(err, session.ErrInvalidGrant) {
		t.Fatalf("Refresh = %+v, %v; want invalid_grant %s", g, err, want)
	}
}

// checkFamily fails the test unless the family is revoked (with the given
// reason) or live, as wanted.
func checkFamily(t *testing.T, st store.Store, id string, revokedFor string) {
	t.Helper()
	f, err := st.Family(context.Background(), id)
	if err != nil {
		t.Fatalf("Family: %v", err)
	}
	if f.Revoked() != (revokedFor != "") || f.RevokeReason != revokedFor {
		t.Errorf("family revoked=%v reason=%q, want revoked for %q", f.Revoked(), f.RevokeReason, revokedFor)
	}
}

var engineTests = []test{
	{"ConcurrentRefresh", testEngineConcurrentRefresh},
	{"ConcurrentRefreshTwoStores", testEngineConcurrentRefreshTwoStores},
	{"GraceReplayAndSuperseded", testEngineGraceReplay},
	{"ThiefSuperseded", testEngineThiefSuperseded},
	{"SupersededRace", testEngineSupersededRace},
	{"ReuseAfterGrace", testEngineReuseAfterGrace},
	{"NoGrace", testEngineNoGrace},
	{"IdleExpiry", testEngineIdleExpiry},
	{"AbsoluteExpiry", testEngineAbsoluteExpiry},
	{"Revocation", testEngineRevocation},
	{"Unknown", testEngineUnknown},
	{"AcrossReopen", testEngineAcrossReopen},
}

// raceRefresh makes n goroutines refresh the same token at once through
// the given engines: exactly one rotates, all answer the byte-identical
// successor.
func raceRefresh(t *testing.T, st store.Store, engines []*session.Engine, rt, familyID string, n int) {
	t.Helper()
	grants := make([]session.Grant, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			grants[i], errs[i] = engines[i%len(engines)].Refresh(context.Background(), rt, "web")
		})
	}
	close(start)
	wg.Wait()

	rotated := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: Refresh: %v", i, errs[i])
		}
		switch grants[i].Outcome {
		case session.OutcomeRotated:
			rotated++
		case session.OutcomeGraceReplay:
		default:
			t.Errorf("goroutine %d: outcome %s", i, grants[i].Outcome)
		}
		if grants[i].RefreshToken != grants[0].RefreshToken {
			t.Errorf("goroutine %d got refresh token %q, goroutine 0 %q", i, grants[i].RefreshToken, grants[0].RefreshToken)
		}
		if !grants[i].RefreshExpiresAt.Equal(grants[0].RefreshExpiresAt) {
			t.Errorf("goroutine %d: RefreshExpiresAt %v, goroutine 0 %v", i, grants[i].RefreshExpiresAt, grants[0].RefreshExpiresAt)
		}
	}
	if rotated != 1 {
		t.Errorf("%d refreshes rotated, want exactly 1", rotated)
	}
	toks, err := st.FamilyTokens(context.Background(), familyID)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 2 {
		t.Fatalf("FamilyTokens = %d tokens, want 2", len(toks))
	}
	checkFamily(t, st, familyID, "")
	// The shared successor is a working token.
	g := refresh(t, engines[0], grants[0].RefreshToken, session.OutcomeRotated)
	if g.RefreshToken == grants[0].RefreshToken {
		t.Error("rotating the successor answered it again")
	}
}

func testEngineConcurrentRefresh(t *testing.T, s *suite) {
	st := s.open(t)
	e := newEngine(t, st, clock.NewFake(T0), engineConfig)
	g := login(t, e)
	raceRefresh(t, st, []*session.Engine{e}, g.RefreshToken, g.Family.ID, 32)
}

func testEngineConcurrentRefreshTwoStores(t *testing.T, s *suite) {
	a := s.open(t)
	b := s.reopen(t, unwrapStore(a))
	clk := clock.NewFake(T0)
	ea := newEngine(t, a, clk, engineConfig)
	eb := newEngine(t, b, clk, engineConfig) // shares the rotation secret through the store
	g := login(t, ea)
	raceRefresh(t, a, []*session.Engine{ea, eb}, g.RefreshToken, g.Family.ID, 32)
}

func testEngineGraceReplay(t *testing.T, s *suite) {
	st := s.open(t)
	clk := clock.NewFake(T0)
	e := newEngine(t, st, clk, engineConfig)
	g0 := login(t, e)
	clk.Advance(time.Minute)
	g1 := refresh(t, e, g0.RefreshToken, session.OutcomeRotated)
	// A retry after a lost answer, up to exactly the grace window.
	clk.Advance(engineConfig.Grace)
	r := refresh(t, e, g0.RefreshToken, session.OutcomeGraceReplay)
	if r.RefreshToken != g1.RefreshToken || !r.RefreshExpiresAt.Equal(g1.RefreshExpiresAt) {
		t.Errorf("grace replay answered %q (expires %v), want %q (expires %v)", r.RefreshToken, r.RefreshExpiresAt, g1.RefreshToken, g1.RefreshExpiresAt)
	}
	if r.AccessToken == g1.AccessToken {
		t.Error("grace replay answered the same access token, want a new one")
	}
	// Once the successor is used, the old token inside grace is
	// superseded: the chain moved on past a token somebody else still
	// holds, so the family is revoked, as for reuse.
	g2 := refresh(t, e, g1.RefreshToken, session.OutcomeRotated)
	refuse(t, e, g0.RefreshToken, session.ReasonSuperseded)
	checkFamily(t, st, g0.Family.ID, string(session.ReasonSuperseded))
	refuse(t, e, g2.RefreshToken, session.ReasonRevoked)
	refuse(t, e, g1.RefreshToken, session.ReasonRevoked)
}

// testEngineThiefSuperseded: a thief rotates a stolen token twice
// (T → S → S2) and the owner presents T inside grace. The family is
// revoked; the thief's S2, and every later refresh of the thief, is
// refused; other sessions are untouched.
func testEngineThiefSuperseded(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	clk := clock.NewFake(T0)
	e := newEngine(t, st, clk, engineConfig)
	owner := login(t, e)
	other := login(t, e)
	s1 := refresh(t, e, owner.RefreshToken, session.OutcomeRotated) // the thief
	s2 := refresh(t, e, s1.RefreshToken, session.OutcomeRotated)
	clk.Advance(engineConfig.Grace / 2)
	refuse(t, e, owner.RefreshToken, session.ReasonSuperseded)
	checkFamily(t, st, owner.Family.ID, string(session.ReasonSuperseded))
	if _, err := e.Session(ctx, owner.Family.ID); !errors.Is(err, session.ErrSessionEnded) {
		t.Errorf("Session of a superseded family: %v, want ErrSessionEnded", err)
	}
	refuse(t, e, s2.RefreshToken, session.ReasonRevoked)
	checkFamily(t, st, other.Family.ID, "")
	refresh(t, e, other.RefreshToken, session.OutcomeRotated)
	clk.Advance(engineConfig.Grace)
	refuse(t, e, s2.RefreshToken, session.ReasonRevoked)
	refuse(t, e, s1.RefreshToken, session.ReasonRevoked)
}

// testEngineSupersededRace: while one caller rotates S (the successor of
// T), others present T inside grace. Each T that runs before the rotation
// of S is answered with S; the first after it is refused superseded and
// revokes the family, and the rest find it revoked. The family ends
// revoked exactly when some T was superseded.
func testEngineSupersededRace(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	e := newEngine(t, st, clock.NewFake(T0), engineConfig)
	g0 := login(t, e)
	g1 := refresh(t, e, g0.RefreshToken, session.OutcomeRotated)
	const n = 16
	var (
		wg      sync.WaitGroup
		grants  [n]session.Grant
		errs    [n]error
		rotated session.Grant
		rotErr  error
	)
	start := make(chan struct{})
	wg.Go(func() {
		<-start
		rotated, rotErr = e.Refresh(ctx, g1.RefreshToken, "web")
	})
	for i := range n {
		wg.Go(func() {
			<-start
			grants[i], errs[i] = e.Refresh(ctx, g0.RefreshToken, "web")
		})
	}
	close(start)
	wg.Wait()
	if rotErr != nil || rotated.Outcome != session.OutcomeRotated {
		t.Fatalf("rotation of S: %v, %v; want rotated", rotated.Outcome, rotErr)
	}
	superseded, revoked := 0, 0
	for i := range n {
		switch {
		case errs[i] == nil && grants[i].Outcome == session.OutcomeGraceReplay && grants[i].RefreshToken == g1.RefreshToken:
		case reasonOf(errs[i]) == session.ReasonSuperseded:
			superseded++
		case reasonOf(errs[i]) == session.ReasonRevoked:
			revoked++
		default:
			t.Errorf("replay %d of T: %v %v, want a grace replay of S, superseded or revoked", i, grants[i].Outcome, errs[i])
		}
	}
	t.Logf("%d grace replays, %d superseded, %d revoked", n-superseded-revoked, superseded, revoked)
	// The first T after the rotation of S revokes; those after it find the
	// family revoked.
	if superseded > 1 || (revoked > 0 && superseded == 0) {
		t.Errorf("%d superseded and %d revoked answers, want at most one superseded, and revoked only after it", superseded, revoked)
	}
	if superseded == 0 {
		checkFamily(t, st, g0.Family.ID, "")
		refresh(t, e, rotated.RefreshToken, session.OutcomeRotated)
		return
	}
	checkFamily(t, st, g0.Family.ID, string(session.ReasonSuperseded))
	refuse(t, e, rotated.RefreshToken, session.ReasonRevoked)
}

func testEngineReuseAfterGrace(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	clk := clock.NewFake(T0)
	e := newEngine(t, st, clk, engineConfig)
	g0 := login(t, e)
	g1 := refresh(t, e, g0.RefreshToken, session.OutcomeRotated)
	other := login(t, e) // another session of the same user
	clk.Advance(engineConfig.Grace + time.Microsecond)
	refuse(t, e, g0.RefreshToken, session.ReasonReused)
	checkFamily(t, st, g0.Family.ID, string(session.ReasonReused))
	// The whole family is gone: the legitimate successor too.
	refuse(t, e, g1.RefreshToken, session.ReasonRevoked)
	refuse(t, e, g0.RefreshToken, session.ReasonRevoked)
	if _, err := e.Session(ctx, g0.Family.ID); !errors.Is(err, session.ErrSessionEnded) {
		t.Errorf("Session of a reused family: %v, want ErrSessionEnded", err)
	}
	// Other sessions are untouched.
	checkFamily(t, st, other.Family.ID, "")
	refresh(t, e, other.RefreshToken, session.OutcomeRotated)
}

func testEngineNoGrace(t *testing.T, s *suite) {
	st := s.open(t)
	cfg := engineConfig
	cfg.Grace = -1
	e := newEngine(t, st, clock.NewFake(T0), cfg)
	g0 := login(t, e)
	refresh(t, e, g0.RefreshToken, session.OutcomeRotated)
	refuse(t, e, g0.RefreshToken, session.ReasonReused)
	checkFamily(t, st, g0.Family.ID, string(session.ReasonReused))
}

func testEngineIdleExpiry(t *testing.T, s *suite) {
	st := s.open(t)
	clk := clock.NewFake(T0)
	e := newEngine(t, st, clk, engineConfig)
	g0 := login(t, e)
	if want := clk.Now().Add(engineConfig.RefreshTTL); !g0.RefreshExpiresAt.Equal(want) {
		t.Errorf("RefreshExpiresAt = %v, want %v", g0.RefreshExpiresAt, want)
	}
	clk.Advance(engineConfig.RefreshTTL - time.Microsecond)
	g1 := refresh(t, e, g0.RefreshToken, session.OutcomeRotated)
	clk.Advance(engineConfig.RefreshTTL)
	refuse(t, e, g1.RefreshToken, session.ReasonExpired)
	// Expiry writes nothing: the family is not revoked.
	checkFamily(t, st, g0.Family.ID, "")
}

func testEngineAbsoluteExpiry(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	clk := clock.NewFake(T0)
	e := newEngine(t, st, clk, engineConfig)
	g := login(t, e)
	end := g.Family.ExpiresAt
	if want := clk.Now().Add(engineConfig.SessionTTL); !end.Equal(want) {
		t.Errorf("Family.ExpiresAt = %v, want %v", end, want)
	}
	// An active session still ends at its absolute expiry.
	for clk.Now().Add(50 * time.Minute).Before(end) {
		clk.Advance(50 * time.Minute)
		g = refresh(t, e, g.RefreshToken, session.OutcomeRotated)
		if g.RefreshExpiresAt.After(end) || g.AccessExpiresAt.After(end) {
			t.Errorf("grant outlives its session: refresh %v, access %v, session %v", g.RefreshExpiresAt, g.AccessExpiresAt, end)
		}
	}
	clk.Advance(end.Sub(clk.Now()) - time.Microsecond)
	g = refresh(t, e, g.RefreshToken, session.OutcomeRotated)
	// Access tokens may expire on a whole second (JWT "exp"), so at most a
	// second before the session ends.
	if !g.RefreshExpiresAt.Equal(end) || g.AccessExpiresAt.After(end) || g.AccessExpiresAt.Before(end.Add(-time.Second)) {
		t.Errorf("last grant: refresh %v, access %v, want both capped at %v", g.RefreshExpiresAt, g.AccessExpiresAt, end)
	}
	clk.Advance(time.Microsecond)
	refuse(t, e, g.RefreshToken, session.ReasonExpired)
	if _, err := e.Session(ctx, g.Family.ID); !errors.Is(err, session.ErrSessionEnded) {
		t.Errorf("Session past its absolute expiry: %v, want ErrSessionEnded", err)
	}
}

func testEngineRevocation(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	clk := clock.NewFake(T0)
	e := newEngine(t, st, clk, engineConfig)

	t.Run("logout", func(t *testing.T) {
		g0 := login(t, e)
		g1 := refresh(t, e, g0.RefreshToken, session.OutcomeRotated)
		if _, err := e.Session(ctx, g0.Family.ID); err != nil {
			t.Fatalf("Session of a live family: %v", err)
		}
		for range 2 { // idempotent
			if err := e.Logout(ctx, g1.RefreshToken); err != nil {
				t.Fatalf("Logout: %v", err)
			}
		}
		checkFamily(t, st, g0.Family.ID, "logout")
		refuse(t, e, g1.RefreshToken, session.ReasonRevoked)
		refuse(t, e, g0.RefreshToken, session.ReasonRevoked)
		if _, err := e.Session(ctx, g0.Family.ID); !errors.Is(err, session.ErrSessionEnded) {
			t.Errorf("Session after logout: %v, want ErrSessionEnded", err)
		}
		if err := e.Logout(ctx, "no-such-token"); err != nil {
			t.Errorf("Logout(unknown) = %v, want nil", err)
		}
	})
	t.Run("revoke session", func(t *testing.T) {
		g := login(t, e)
		if err := e.RevokeSession(ctx, g.Family.ID, "admin"); err != nil {
			t.Fatalf("RevokeSession: %v", err)
		}
		if err := e.RevokeSession(ctx, g.Family.ID, "again"); err != nil {
			t.Fatalf("RevokeSession again: %v", err)
		}
		checkFamily(t, st, g.Family.ID, "admin")
		refuse(t, e, g.RefreshToken, session.ReasonRevoked)
	})
	t.Run("logout racing refresh", func(t *testing.T) {
		for i := range 8 {
			g := login(t, e)
			var (
				wg     sync.WaitGroup
				rerr   error
				outErr error
			)
			wg.Go(func() { _, rerr = e.Refresh(ctx, g.RefreshToken, "web") })
			wg.Go(func() { outErr = e.Logout(ctx, g.RefreshToken) })
			wg.Wait()
			if outErr != nil {
				t.Fatalf("round %d: Logout: %v", i, outErr)
			}
			if rerr != nil && reasonOf(rerr) != session.ReasonRevoked {
				t.Fatalf("round %d: Refresh: %v, want success or revoked", i, rerr)
			}
			checkFamily(t, st, g.Family.ID, "logout")
		}
	})
}

func testEngineUnknown(t *testing.T, s *suite) {
	st := s.open(t)
	e := newEngine(t, st, clock.NewFake(T0), engineConfig)
	login(t, e)
	for _, rt := range []string{"", "no-such-token", "YWJj"} {
		refuse(t, e, rt, session.ReasonUnknown)
	}
}

func testEngineAcrossReopen(t *testing.T, s *suite) {
	st := s.open(t)
	if s.h.Reopen == nil {
		t.Skip("Harness.Reopen is nil")
	}
	clk := clock.NewFake(T0)
	e := newEngine(t, st, clk, engineConfig)
	g0 := login(t, e)
	g1 := refresh(t, e, g0.RefreshToken, session.OutcomeRotated)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	re := s.reopen(t, unwrapStore(st))
	e2 := newEngine(t, re, clk, engineConfig)
	// The rotation secret survived: the grace replay derives the same
	// successor.
	r := refresh(t, e2, g0.RefreshToken, session.OutcomeGraceReplay)
	if r.RefreshToken != g1.RefreshToken {
		t.Errorf("grace replay after reopen = %q, want %q", r.RefreshToken, g1.RefreshToken)
	}
	refresh(t, e2, g1.RefreshToken, session.OutcomeRotated)
}
