package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/internal/clock"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/user"
)

// chainTests cover what an Exchange's Chain carries besides the tokens:
// the family's attributes and, for live claims, the subject's user claims,
// so that a refresh needs no other read.
var chainTests = []test{
	{"ChainAttributes", testChainAttributes},
	{"ChainAttributesBatch", testChainAttributesBatch},
}

// chainOf returns the Chain an Exchange of hash hands to decide, writing
// nothing.
func chainOf(t *testing.T, st store.Store, hash []byte) session.Chain {
	t.Helper()
	var c session.Chain
	err := st.Exchange(context.Background(), hash, func(got session.Chain) (session.Change, error) {
		c = got
		return session.Change{}, nil
	})
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return c
}

func testChainAttributes(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)

	// No attributes stored, no user claims: the defaults.
	plain, plainFirst := mustCreate(t, st, "plain")
	c := chainOf(t, st, plainFirst.Hash)
	if !reflect.DeepEqual(c.Attributes, session.DefaultAttributes) || c.SubjectClaims != nil {
		t.Errorf("chain of a family without attributes: %+v, subject claims %v; want the defaults, none", c.Attributes, c.SubjectClaims)
	}
	equalFamily(t, c.Family, plain)

	// The subject's claims come with the defaults, which are live.
	uc := claims.Set{"roles": []any{"editor"}, "tenant": "acme"}
	setUserClaims(t, st, plain.Subject, uc)
	if c := chainOf(t, st, plainFirst.Hash); !reflect.DeepEqual(c.SubjectClaims, uc) {
		t.Errorf("SubjectClaims of a live family = %v, want %v", c.SubjectClaims, uc)
	}

	// Stored attributes, not live: no subject claims, even though the
	// subject has some. The same on the rotated token.
	fixed, fixedFirst := mustCreate(t, st, "fixed")
	setUserClaims(t, st, fixed.Subject, uc)
	a := session.Attributes{Scope: "read write", Claims: claims.Set{"tier": "gold"}, ConfidentialClient: true}
	if err := st.PutAttributes(ctx, fixed.ID, a); err != nil {
		t.Fatalf("PutAttributes: %v", err)
	}
	next := rotate(t, st, fixedFirst, "fixed-1", T0.Add(1))
	for _, h := range [][]byte{fixedFirst.Hash, next.Hash} {
		c := chainOf(t, st, h)
		if !reflect.DeepEqual(c.Attributes, a) || c.SubjectClaims != nil {
			t.Errorf("chain of a family with fixed claims: %+v, subject claims %v; want %+v, none", c.Attributes, c.SubjectClaims, a)
		}
	}

	// Stored attributes, live: both sets.
	live, liveFirst := mustCreate(t, st, "live")
	setUserClaims(t, st, live.Subject, uc)
	la := session.Attributes{Scope: "read", Claims: claims.Set{"tier": "silver"}, LiveClaims: true}
	if err := st.PutAttributes(ctx, live.ID, la); err != nil {
		t.Fatalf("PutAttributes: %v", err)
	}
	c = chainOf(t, st, liveFirst.Hash)
	if !reflect.DeepEqual(c.Attributes, la) || !reflect.DeepEqual(c.SubjectClaims, uc) {
		t.Errorf("chain of a live family with claims: %+v, subject claims %v; want %+v, %v", c.Attributes, c.SubjectClaims, la, uc)
	}

	// A change to the user's claims reaches the next exchange.
	uc2 := claims.Set{"tenant": "beta"}
	if err := st.SetUserClaims(ctx, live.Subject, uc2, T0.Add(2)); err != nil {
		t.Fatal(err)
	}
	if c := chainOf(t, st, liveFirst.Hash); !reflect.DeepEqual(c.SubjectClaims, uc2) {
		t.Errorf("SubjectClaims after a change = %v, want %v", c.SubjectClaims, uc2)
	}
	if err := st.SetUserClaims(ctx, live.Subject, nil, T0.Add(3)); err != nil {
		t.Fatal(err)
	}
	if c := chainOf(t, st, liveFirst.Hash); c.SubjectClaims != nil {
		t.Errorf("SubjectClaims after clearing = %v, want none", c.SubjectClaims)
	}
}

// setUserClaims creates the built-in user subject with claims c.
func setUserClaims(t *testing.T, st store.Store, subject string, c claims.Set) {
	t.Helper()
	ctx := context.Background()
	if err := st.CreateUser(ctx, user.User{ID: subject, Username: "name-" + subject, PasswordHash: "h", CreatedAt: T0}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetUserClaims(ctx, subject, c, T0); err != nil {
		t.Fatal(err)
	}
}

// testChainAttributesBatch exchanges the tokens of many families at once,
// so that stores that group exchanges read them in one batch: each decide
// sees its own family's attributes, never another's.
func testChainAttributesBatch(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	const n = 32
	hashes := make([][]byte, n)
	want := make([]session.Attributes, n)
	for i := range n {
		f, first := mustCreate(t, st, fmt.Sprintf("batch-%d", i))
		hashes[i] = first.Hash
		want[i] = session.DefaultAttributes
		if i%2 == 1 {
			want[i] = session.Attributes{Scope: fmt.Sprintf("s%d", i), Claims: claims.Set{"n": fmt.Sprint(i)}, LiveClaims: i%4 == 1}
			if err := st.PutAttributes(ctx, f.ID, want[i]); err != nil {
				t.Fatalf("PutAttributes: %v", err)
			}
		}
	}
	got := make([]session.Chain, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := st.Exchange(ctx, hashes[i], func(c session.Chain) (session.Change, error) {
				got[i] = c
				return session.Change{}, nil
			})
			if err != nil {
				t.Errorf("Exchange %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	for i := range n {
		if !reflect.DeepEqual(got[i].Attributes, want[i]) {
			t.Errorf("family %d: attributes %+v, want %+v", i, got[i].Attributes, want[i])
		}
		if got[i].SubjectClaims != nil {
			t.Errorf("family %d: subject claims %v for a subject without any", i, got[i].SubjectClaims)
		}
	}
}

// The theft signal runs with the other engine tests.
func init() {
	engineTests = append(engineTests, test{"DPoPTheftBeforeScope", testEngineDPoPTheftBeforeScope})
}

// testEngineDPoPTheftBeforeScope: the token of a DPoP-bound family
// presented without proof is a theft signal that revokes the family before
// the scope or the client is looked at, now that the rules read the
// session's attributes inside the exchange: a thief cannot dodge the
// revocation by asking for a scope the session lacks or by naming no
// client.
func testEngineDPoPTheftBeforeScope(t *testing.T, s *suite) {
	ctx := context.Background()
	for _, req := range []session.RefreshRequest{
		{Scope: "admin"},                  // wider than the session's
		{ClientID: "other"},               // not the confidential client
		{ClientID: "other", Scope: "a b"}, // both
		{Scope: "bad\x00scope"},           // a malformed scope
	} {
		st := s.open(t)
		e := newEngine(t, st, clock.NewFake(T0), engineConfig)
		g, err := e.LoginWith(ctx, session.Login{Subject: "alice", ClientID: "conf", KeyThumbprint: "jkt-owner",
			Attributes: session.Attributes{Scope: "read", ConfidentialClient: true}})
		if err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("client %q, scope %q", req.ClientID, req.Scope)
		req.Token = g.RefreshToken
		_, err = e.RefreshWith(ctx, req)
		var ge *session.GrantError
		if !errors.As(err, &ge) || ge.Reason != session.ReasonProofMissing || !ge.Revoked {
			t.Errorf("stolen bound token with %s: %v, want %s with Revoked set", what, err, session.ReasonProofMissing)
			continue
		}
		f, err := e.Session(ctx, g.Family.ID)
		if err == nil || f.RevokeReason != string(session.ReasonProofMissing) {
			t.Errorf("family after theft with %s = %+v, %v; want revoked", what, f, err)
		}
		// The owner, with the key, the client and a scope it holds, is out.
		_, err = e.RefreshWith(ctx, session.RefreshRequest{Token: g.RefreshToken, ClientID: "conf", Scope: "read", KeyThumbprint: "jkt-owner"})
		if reasonOf(err) != session.ReasonRevoked {
			t.Errorf("owner's refresh after theft: %v, want %s", err, session.ReasonRevoked)
		}
	}
}
