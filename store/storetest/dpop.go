package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/internal/clock"
	"github.com/silentrefresh/silentrefresh/session"
)

// The DPoP binding rules run with the other engine tests.
func init() {
	engineTests = append(engineTests, test{"DPoPBinding", testEngineDPoPBinding})
}

// testEngineDPoPBinding: a family bound to a key at login is refreshed
// only with proof of that key, grace replays included; its token presented
// without proof or with another key, inside or outside the grace window,
// revokes the family, and the owner's next refresh is refused. A bearer
// family refreshed with a proof stays a bearer family.
func testEngineDPoPBinding(t *testing.T, s *suite) {
	const owner, thief = "jkt-owner", "jkt-thief"
	ctx := context.Background()

	// login opens a bound family and rotates its first token once, so
	// that the first token is consumed and the second is current.
	login := func(t *testing.T) (*session.Engine, *clock.Fake, session.Grant, session.Grant) {
		st := s.open(t)
		clk := clock.NewFake(T0)
		e := newEngine(t, st, clk, engineConfig)
		g0, err := e.LoginBound(ctx, "alice", "", owner)
		if err != nil {
			t.Fatal(err)
		}
		if g0.KeyThumbprint != owner || g0.Family.KeyThumbprint != owner {
			t.Fatalf("login grant bound to %q, family to %q; want %q", g0.KeyThumbprint, g0.Family.KeyThumbprint, owner)
		}
		f, err := e.Session(ctx, g0.Family.ID)
		if err != nil || f.KeyThumbprint != owner {
			t.Fatalf("stored family = %+v, %v; want jkt %q", f, err, owner)
		}
		clk.Advance(time.Second)
		g1, err := e.RefreshBound(ctx, g0.RefreshToken, "", owner)
		if err != nil || g1.Outcome != session.OutcomeRotated || g1.KeyThumbprint != owner {
			t.Fatalf("owner's refresh = %+v, %v", g1, err)
		}
		return e, clk, g0, g1
	}
	revoked := func(t *testing.T, e *session.Engine, g session.Grant, reason session.Reason) {
		t.Helper()
		f, err := e.Session(ctx, g.Family.ID)
		if err == nil || f.RevokeReason != string(reason) {
			t.Fatalf("family after theft = %+v, %v; want revoked for %s", f, err, reason)
		}
		// The owner, with the right key and the newest token, is out.
		if _, err := e.RefreshBound(ctx, g.RefreshToken, "", owner); reasonOf(err) != session.ReasonRevoked {
			t.Fatalf("owner's refresh after theft: %v, want %s", err, session.ReasonRevoked)
		}
	}

	t.Run("grace replay needs the key too", func(t *testing.T) {
		e, _, g0, g1 := login(t)
		g, err := e.RefreshBound(ctx, g0.RefreshToken, "", owner)
		if err != nil || g.Outcome != session.OutcomeGraceReplay || g.RefreshToken != g1.RefreshToken || g.KeyThumbprint != owner {
			t.Fatalf("owner's grace replay = %+v, %v", g, err)
		}
		_, err = e.RefreshBound(ctx, g0.RefreshToken, "", thief)
		if reasonOf(err) != session.ReasonKeyMismatch {
			t.Fatalf("thief's grace replay: %v, want %s", err, session.ReasonKeyMismatch)
		}
		revoked(t, e, g1, session.ReasonKeyMismatch)
	})
	for _, tc := range []struct {
		name   string
		stale  bool          // present the consumed first token, else the current one
		after  time.Duration // from the rotation
		jkt    string
		reason session.Reason
	}{
		{"current token without proof", false, 0, "", session.ReasonProofMissing},
		{"current token with another key", false, 0, thief, session.ReasonKeyMismatch},
		{"consumed token inside grace without proof", true, time.Second, "", session.ReasonProofMissing},
		{"consumed token inside grace with another key", true, time.Second, thief, session.ReasonKeyMismatch},
		{"consumed token outside grace without proof", true, time.Minute, "", session.ReasonProofMissing},
		{"consumed token outside grace with another key", true, time.Minute, thief, session.ReasonKeyMismatch},
		{"current token past its idle expiry without proof", false, 2 * time.Hour, "", session.ReasonProofMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, clk, g0, g1 := login(t)
			clk.Advance(tc.after)
			rt := g1.RefreshToken
			if tc.stale {
				rt = g0.RefreshToken
			}
			var err error
			if tc.jkt == "" {
				_, err = e.Refresh(ctx, rt, "")
			} else {
				_, err = e.RefreshBound(ctx, rt, "", tc.jkt)
			}
			var ge *session.GrantError
			if !errors.As(err, &ge) || ge.Reason != tc.reason || !ge.Revoked {
				t.Fatalf("refresh: %v (%+v), want %s with Revoked set", err, ge, tc.reason)
			}
			revoked(t, e, g1, tc.reason)
		})
	}
	t.Run("bearer family with a proof", func(t *testing.T) {
		st := s.open(t)
		e := newEngine(t, st, clock.NewFake(T0), engineConfig)
		g0, err := e.Login(ctx, "bob", "")
		if err != nil || g0.KeyThumbprint != "" {
			t.Fatalf("bearer login = %+v, %v", g0, err)
		}
		g1, err := e.RefreshBound(ctx, g0.RefreshToken, "", thief)
		if err != nil || g1.KeyThumbprint != thief || g1.Family.KeyThumbprint != "" {
			t.Fatalf("bearer refresh with a proof = %+v, %v; want an access token bound to it", g1, err)
		}
		if g2, err := e.Refresh(ctx, g1.RefreshToken, ""); err != nil || g2.KeyThumbprint != "" {
			t.Fatalf("bearer family's next refresh without proof = %+v, %v", g2, err)
		}
	})
}
