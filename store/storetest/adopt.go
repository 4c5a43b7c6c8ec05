package storetest

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/assertion"
	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/internal/clock"
	"github.com/silentrefresh/silentrefresh/registry"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// adoptTests cover what sessions from other logins need: attributes,
// user claims, assertion jti and the client registry.
var adoptTests = []test{
	{"Attributes", testAttributes},
	{"UserClaims", testUserClaims},
	{"UseJTI", testUseJTI},
	{"UseJTIConcurrent", testUseJTIConcurrent},
	{"Clients", testClients},
	{"EngineScopeAndClaims", testEngineScopeAndClaims},
}

func testAttributes(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	f, first := mustCreate(t, st, "fa")
	in, err := st.LookupToken(ctx, first.Hash)
	if err != nil {
		t.Fatalf("LookupToken: %v", err)
	}
	if !reflect.DeepEqual(in.Attributes, session.DefaultAttributes) || in.SubjectClaims != nil {
		t.Errorf("attributes of a family without any = %+v, subject claims %v; want the defaults", in.Attributes, in.SubjectClaims)
	}
	equalFamily(t, in.Family, f)
	equalToken(t, in.Token, first)

	a := session.Attributes{Scope: "read write", Claims: claims.Set{"roles": []any{"admin"}, "tenant": "acme"}, ConfidentialClient: true}
	if err := st.PutAttributes(ctx, f.ID, a); err != nil {
		t.Fatalf("PutAttributes: %v", err)
	}
	if err := st.PutAttributes(ctx, "nope", a); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("PutAttributes(unknown family) = %v, want ErrNotFound", err)
	}
	next := rotate(t, st, first, "fa-1", T0.Add(time.Minute))
	for _, h := range [][]byte{first.Hash, next.Hash} {
		in, err := st.LookupToken(ctx, h)
		if err != nil {
			t.Fatalf("LookupToken: %v", err)
		}
		if !reflect.DeepEqual(in.Attributes, a) {
			t.Errorf("attributes = %+v, want %+v", in.Attributes, a)
		}
	}
	in, _ = st.LookupToken(ctx, first.Hash)
	checkTime(t, "TokenInfo.Token.ConsumedAt", in.Token.ConsumedAt, T0.Add(time.Minute))
	if _, err := st.LookupToken(ctx, Hash("unknown")); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("LookupToken(unknown) = %v, want ErrNotFound", err)
	}
	// The subject's user claims come with the lookup.
	if err := st.CreateUser(ctx, user.User{ID: f.Subject, Username: "u-fa", PasswordHash: "h", CreatedAt: T0}); err != nil {
		t.Fatal(err)
	}
	uc := claims.Set{"roles": []any{"editor"}}
	if err := st.SetUserClaims(ctx, f.Subject, uc, T0); err != nil {
		t.Fatal(err)
	}
	if in, _ := st.LookupToken(ctx, next.Hash); !reflect.DeepEqual(in.SubjectClaims, uc) {
		t.Errorf("SubjectClaims = %v, want %v", in.SubjectClaims, uc)
	}
	// Deleting the family deletes its attributes.
	if n, err := st.DeleteExpired(ctx, T0.Add(48*time.Hour)); err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v", n, err)
	}
	if _, err := st.LookupToken(ctx, next.Hash); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("LookupToken after DeleteExpired = %v", err)
	}
}

func testUserClaims(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	if err := st.CreateUser(ctx, user.User{ID: "u-1", Username: "alice", PasswordHash: "h", CreatedAt: T0}); err != nil {
		t.Fatal(err)
	}
	if c, err := st.UserClaims(ctx, "u-1"); err != nil || c != nil {
		t.Errorf("UserClaims before any = %v, %v", c, err)
	}
	c := claims.Set{"roles": []any{"admin", "editor"}, "tenant": "acme", "level": float64(3)}
	if err := st.SetUserClaims(ctx, "u-1", c, T0); err != nil {
		t.Fatalf("SetUserClaims: %v", err)
	}
	if got, err := st.UserClaims(ctx, "u-1"); err != nil || !reflect.DeepEqual(got, c) {
		t.Errorf("UserClaims = %v, %v; want %v", got, err, c)
	}
	c2 := claims.Set{"tenant": "beta"}
	if err := st.SetUserClaims(ctx, "u-1", c2, T0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.UserClaims(ctx, "u-1"); !reflect.DeepEqual(got, c2) {
		t.Errorf("UserClaims after replace = %v, want %v", got, c2)
	}
	if err := st.SetUserClaims(ctx, "u-1", nil, T0); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.UserClaims(ctx, "u-1"); got != nil {
		t.Errorf("UserClaims after clearing = %v", got)
	}
	for _, set := range []claims.Set{c, nil} {
		if err := st.SetUserClaims(ctx, "nobody", set, T0); !errors.Is(err, user.ErrNotFound) {
			t.Errorf("SetUserClaims(unknown user, %v) = %v, want ErrNotFound", set, err)
		}
	}
}

func testUseJTI(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	exp := T0.Add(5 * time.Minute)
	if err := st.UseJTI(ctx, "app", "j-1", exp, T0); err != nil {
		t.Fatalf("UseJTI: %v", err)
	}
	if err := st.UseJTI(ctx, "app", "j-1", exp, T0.Add(time.Minute)); !errors.Is(err, assertion.ErrReplayed) {
		t.Errorf("UseJTI again = %v, want ErrReplayed", err)
	}
	if err := st.UseJTI(ctx, "other", "j-1", exp, T0); err != nil {
		t.Errorf("the same jti of another issuer: %v", err)
	}
	// Another store on the same database (a replica) sees it too.
	if s.h.Reopen != nil {
		st2 := s.reopen(t, unwrapStore(st))
		if err := st2.UseJTI(ctx, "app", "j-1", exp, T0); !errors.Is(err, assertion.ErrReplayed) {
			t.Errorf("UseJTI on a second store = %v, want ErrReplayed", err)
		}
	}
	// Once expired, the record may go: a later assertion reusing the jti
	// is a different assertion.
	if err := st.UseJTI(ctx, "app", "j-1", exp.Add(10*time.Minute), exp.Add(time.Second)); err != nil {
		t.Errorf("UseJTI after the first expired: %v", err)
	}
}

func testUseJTIConcurrent(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	var ok, replayed atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			switch err := st.UseJTI(ctx, "app", "race", T0.Add(time.Minute), T0); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, assertion.ErrReplayed):
				replayed.Add(1)
			default:
				t.Errorf("UseJTI: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || replayed.Load() != 15 {
		t.Errorf("%d accepted, %d replayed; want 1 and 15", ok.Load(), replayed.Load())
	}
}

func testClients(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	hash, _ := registry.HashSecret("0123456789abcdef0123456789abcdef")
	conf := registry.Client{ID: "backend", SecretHash: hash, Scopes: []string{"read", "write"}, CreatedAt: T0}
	pub := registry.Client{ID: "spa", CreatedAt: T0.Add(time.Second)}
	none := registry.Client{ID: "locked", Scopes: []string{}, CreatedAt: T0}
	for _, c := range []registry.Client{conf, pub, none} {
		if err := st.AddClient(ctx, c); err != nil {
			t.Fatalf("AddClient(%s): %v", c.ID, err)
		}
	}
	if err := st.AddClient(ctx, registry.Client{ID: "spa", CreatedAt: T0}); !errors.Is(err, registry.ErrExists) {
		t.Errorf("AddClient(taken) = %v, want ErrExists", err)
	}
	for _, want := range []registry.Client{conf, pub, none} {
		got, err := st.Client(ctx, want.ID)
		if err != nil {
			t.Fatalf("Client(%s): %v", want.ID, err)
		}
		checkTime(t, "Client.CreatedAt", got.CreatedAt, want.CreatedAt)
		got.CreatedAt = want.CreatedAt
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Client(%s) = %+v, want %+v", want.ID, got, want)
		}
	}
	all, err := st.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range all {
		ids = append(ids, c.ID)
	}
	if !slices.Equal(ids, []string{"backend", "locked", "spa"}) {
		t.Errorf("Clients = %v", ids)
	}
	if err := st.RemoveClient(ctx, "spa"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client(ctx, "spa"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Client after remove = %v", err)
	}
	if err := st.RemoveClient(ctx, "spa"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("RemoveClient twice = %v", err)
	}
}

// testEngineScopeAndClaims runs the engine over the store with a real
// issuer: scope and claims reach the access tokens, a refresh narrows the
// scope and is refused a wider one with nothing written, and a change to
// the user's claims reaches the next refresh.
func testEngineScopeAndClaims(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	clk := clock.NewFake(T0)
	if err := token.EnsureSigningKey(ctx, st, T0); err != nil {
		t.Fatal(err)
	}
	iss := token.NewIssuer(st, "https://issuer.test", []string{"https://api.test"})
	cfg := engineConfig
	cfg.Now = clk.Now
	e, err := session.NewEngine(ctx, st, iss, cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier(token.NewStoreKeySet(st, token.WithClock(clk.Now)),
		token.VerifierConfig{Issuer: "https://issuer.test", Audience: "https://api.test", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	decode := func(g session.Grant) token.Claims {
		t.Helper()
		c, err := v.Verify(ctx, g.AccessToken)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		return c
	}

	// A built-in user: live claims.
	if err := st.CreateUser(ctx, user.User{ID: "u-1", Username: "alice", PasswordHash: "h", CreatedAt: T0}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetUserClaims(ctx, "u-1", claims.Set{"roles": []any{"viewer"}}, T0); err != nil {
		t.Fatal(err)
	}
	uc, _ := st.UserClaims(ctx, "u-1")
	g, err := e.LoginWith(ctx, session.Login{Subject: "u-1", Attributes: session.Attributes{Scope: "read  write read", LiveClaims: true}, SubjectClaims: uc})
	if err != nil {
		t.Fatal(err)
	}
	if c := decode(g); c.Scope != "read write" || !reflect.DeepEqual(c.Extra["roles"], []any{"viewer"}) {
		t.Errorf("first token: scope %q, extra %v", c.Scope, c.Extra)
	}
	if err := st.SetUserClaims(ctx, "u-1", claims.Set{"roles": []any{"admin"}}, T0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	g2, err := e.RefreshScoped(ctx, g.RefreshToken, "", "read")
	if err != nil {
		t.Fatal(err)
	}
	if c := decode(g2); c.Scope != "read" || !reflect.DeepEqual(c.Extra["roles"], []any{"admin"}) {
		t.Errorf("narrowed refresh: scope %q, extra %v; want read and the new roles", c.Scope, c.Extra)
	}
	before, _ := st.FamilyTokens(ctx, g.Family.ID)
	if _, err := e.RefreshScoped(ctx, g2.RefreshToken, "", "read admin"); !errors.Is(err, session.ErrInvalidScope) {
		t.Fatalf("widening refresh = %v, want ErrInvalidScope", err)
	}
	after, _ := st.FamilyTokens(ctx, g.Family.ID)
	if !reflect.DeepEqual(before, after) {
		t.Error("a refused wider scope changed the family's tokens")
	}
	// The session's scope stays whole: the next refresh may ask for it all.
	g3, err := e.Refresh(ctx, g2.RefreshToken, "")
	if err != nil {
		t.Fatal(err)
	}
	if c := decode(g3); c.Scope != "read write" {
		t.Errorf("refresh without scope: %q, want the session's whole scope", c.Scope)
	}

	// An assertion's session: fixed claims, no live ones.
	g4, err := e.LoginWith(ctx, session.Login{Subject: "app|bob", Attributes: session.Attributes{Claims: claims.Set{"tenant": "acme"}}})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	g5, err := e.Refresh(ctx, g4.RefreshToken, "")
	if err != nil {
		t.Fatal(err)
	}
	if c := decode(g5); !reflect.DeepEqual(c.Extra, map[string]any{"tenant": "acme"}) || c.Scope != "" {
		t.Errorf("assertion session after refresh: extra %v scope %q", c.Extra, c.Scope)
	}
	// A confidential client's session is refreshed by that client alone.
	g6, err := e.LoginWith(ctx, session.Login{Subject: "u-1", ClientID: "backend", Attributes: session.Attributes{ConfidentialClient: true, LiveClaims: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, cid := range []string{"", "other"} {
		if _, err := e.Refresh(ctx, g6.RefreshToken, cid); reasonOf(err) != session.ReasonClientMismatch {
			t.Errorf("refresh of a confidential session as %q = %v, want client_mismatch", cid, err)
		}
	}
	if _, err := e.Refresh(ctx, g6.RefreshToken, "backend"); err != nil {
		t.Errorf("refresh by its own client: %v", err)
	}
	// Reserved claims and bad scopes never open a session.
	for _, l := range []session.Login{
		{Subject: "x", Attributes: session.Attributes{Claims: claims.Set{"sub": "root"}}},
		{Subject: "x", Attributes: session.Attributes{Scope: "bad\"scope"}},
	} {
		if _, err := e.LoginWith(ctx, l); err == nil {
			t.Errorf("LoginWith(%+v) succeeded", l)
		}
	}
}
