package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/internal/clock"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/user"
)

// accountTests cover session.SubjectStore and store.Accounts: the sessions
// of one user, the operators' changes to users, the per-user cap and the
// sweep of spent tokens.
var accountTests = []test{
	{"UserByIDAndUsers", testUserByIDAndUsers},
	{"UpdateUser", testUpdateUser},
	{"UpdateUserRefused", testUpdateUserRefused},
	{"Sessions", testSessions},
	{"RevokeSubject", testRevokeSubject},
	{"CreateFamilyCapped", testCreateFamilyCapped},
	{"CreateFamilyCappedConcurrent", testCreateFamilyCappedConcurrent},
	{"CreateFamilyCappedConcurrentTwoStores", testCreateFamilyCappedConcurrentTwoStores},
	{"DeleteSpentTokens", testDeleteSpentTokens},
	{"RowsPerSession", testRowsPerSession},
}

// subjectFamily creates a family of subject, created at the given instant,
// with a first token valid for an hour.
func subjectFamily(t *testing.T, st store.Store, id, subject string, at time.Time) (session.Family, session.RefreshToken) {
	t.Helper()
	f, first := newFamily(id)
	f.Subject, f.CreatedAt, f.ExpiresAt = subject, at, at.Add(24*time.Hour)
	first.IssuedAt, first.ExpiresAt = at, at.Add(time.Hour)
	if _, err := st.CreateFamilyCapped(context.Background(), f, first, 0, ""); err != nil {
		t.Fatalf("CreateFamily(%s): %v", id, err)
	}
	return f, first
}

func testUserByIDAndUsers(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	if us, err := st.Users(ctx); err != nil || len(us) != 0 {
		t.Fatalf("Users on an empty store = %v, %v", us, err)
	}
	for _, u := range []user.User{
		{ID: "u-b", Username: "bob", PasswordHash: "hb", CreatedAt: T0.Add(time.Second)},
		{ID: "u-a", Username: "alice", PasswordHash: "ha", CreatedAt: T0},
		{ID: "u-C", Username: "Carol", PasswordHash: "hc", CreatedAt: T0},
	} {
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	us, err := st.Users(ctx)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	var names []string
	for _, u := range us {
		names = append(names, u.Username)
	}
	// Byte order: upper case first.
	if fmt.Sprint(names) != "[Carol alice bob]" {
		t.Errorf("Users = %v, want [Carol alice bob]", names)
	}
	got, err := st.UserByID(ctx, "u-a")
	if err != nil {
		t.Fatalf("UserByID: %v", err)
	}
	checkTime(t, "User.CreatedAt", got.CreatedAt, T0)
	checkTime(t, "User.DisabledAt", got.DisabledAt, time.Time{})
	if got.Username != "alice" || got.PasswordHash != "ha" {
		t.Errorf("UserByID = %+v", got)
	}
	for _, id := range []string{"", "u-x", "alice", "U-A"} {
		if _, err := st.UserByID(ctx, id); !errors.Is(err, user.ErrNotFound) {
			t.Errorf("UserByID(%q) error = %v, want ErrNotFound", id, err)
		}
	}
}

func testUpdateUser(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	alice := user.User{ID: "u-a", Username: "alice", PasswordHash: "h1", CreatedAt: T0}
	bob := user.User{ID: "u-b", Username: "bob", PasswordHash: "hb", CreatedAt: T0}
	for _, u := range []user.User{alice, bob} {
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	subjectFamily(t, st, "a1", "u-a", T0)
	subjectFamily(t, st, "a2", "u-a", T0.Add(time.Minute))
	subjectFamily(t, st, "a3", "u-a", T0.Add(2*time.Minute))
	subjectFamily(t, st, "b1", "u-b", T0)
	early := T0.Add(3 * time.Minute)
	if err := st.RevokeFamily(ctx, "a3", early, "logout"); err != nil {
		t.Fatal(err)
	}

	at := T0.Add(time.Hour)
	n, err := st.UpdateUser(ctx, "u-a", store.UserChange{Disable: true, RevokeReason: session.RevokeUserDisabled, At: at})
	if err != nil || n != 2 {
		t.Fatalf("UpdateUser(disable) = %d, %v; want 2 sessions revoked", n, err)
	}
	got, err := st.UserByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	checkTime(t, "User.DisabledAt", got.DisabledAt, at)
	if !got.Disabled() || got.PasswordHash != "h1" {
		t.Errorf("after disable: %+v", got)
	}
	for id, reason := range map[string]string{"a1": session.RevokeUserDisabled, "a2": session.RevokeUserDisabled, "a3": "logout", "b1": ""} {
		checkFamily(t, st, id, reason)
	}
	if f, _ := st.Family(ctx, "a1"); !f.RevokedAt.Equal(at) {
		t.Errorf("a1 revoked at %v, want %v", f.RevokedAt, at)
	}
	if f, _ := st.Family(ctx, "a3"); !f.RevokedAt.Equal(early) {
		t.Errorf("a3 revoked at %v, want its first revocation %v", f.RevokedAt, early)
	}
	if b, err := st.UserByID(ctx, "u-b"); err != nil || b.Disabled() {
		t.Errorf("bob after alice's disable = %+v, %v", b, err)
	}

	// Enabling revokes nothing and brings no session back.
	if n, err := st.UpdateUser(ctx, "u-a", store.UserChange{Enable: true}); err != nil || n != 0 {
		t.Fatalf("UpdateUser(enable) = %d, %v", n, err)
	}
	if got, _ := st.UserByID(ctx, "u-a"); got.Disabled() {
		t.Errorf("after enable: %+v", got)
	}
	checkFamily(t, st, "a1", session.RevokeUserDisabled)

	subjectFamily(t, st, "a4", "u-a", T0.Add(2*time.Hour))
	n, err = st.UpdateUser(ctx, "u-a", store.UserChange{PasswordHash: "h2", RevokeReason: session.RevokePasswordChanged, At: T0.Add(3 * time.Hour)})
	if err != nil || n != 1 {
		t.Fatalf("UpdateUser(password) = %d, %v; want 1", n, err)
	}
	if got, _ := st.UserByName(ctx, "alice"); got.PasswordHash != "h2" || got.Disabled() {
		t.Errorf("after password change: %+v", got)
	}
	checkFamily(t, st, "a4", session.RevokePasswordChanged)

	subjectFamily(t, st, "a5", "u-a", T0.Add(4*time.Hour))
	n, err = st.UpdateUser(ctx, "u-a", store.UserChange{Delete: true, RevokeReason: session.RevokeUserDeleted, At: T0.Add(5 * time.Hour)})
	if err != nil || n != 1 {
		t.Fatalf("UpdateUser(delete) = %d, %v; want 1", n, err)
	}
	if _, err := st.UserByName(ctx, "alice"); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("UserByName after delete: %v", err)
	}
	if _, err := st.UserByID(ctx, "u-a"); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("UserByID after delete: %v", err)
	}
	checkFamily(t, st, "a5", session.RevokeUserDeleted)
	// The name is free again.
	if err := st.CreateUser(ctx, user.User{ID: "u-a2", Username: "alice", PasswordHash: "h", CreatedAt: T0}); err != nil {
		t.Errorf("CreateUser after delete: %v", err)
	}
	if _, err := st.UpdateUser(ctx, "u-a", store.UserChange{Enable: true}); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("UpdateUser of a deleted user: %v, want ErrNotFound", err)
	}
}

func testUpdateUserRefused(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	if err := st.CreateUser(ctx, user.User{ID: "u-a", Username: "alice", PasswordHash: "h1", CreatedAt: T0}); err != nil {
		t.Fatal(err)
	}
	subjectFamily(t, st, "a1", "u-a", T0)
	bad := []store.UserChange{
		{Disable: true, Enable: true, At: T0},
		{Delete: true, Disable: true, At: T0},
		{Delete: true, PasswordHash: "h2"},
		{Disable: true},
		{RevokeReason: "x"},
	}
	for _, c := range bad {
		if _, err := st.UpdateUser(ctx, "u-a", c); err == nil || errors.Is(err, user.ErrNotFound) {
			t.Errorf("UpdateUser(%+v) error = %v, want a refusal", c, err)
		}
	}
	for _, id := range []string{"", "u-x"} {
		n, err := st.UpdateUser(ctx, id, store.UserChange{Disable: true, PasswordHash: "h3", RevokeReason: "x", At: T0})
		if !errors.Is(err, user.ErrNotFound) || n != 0 {
			t.Errorf("UpdateUser(%q) = %d, %v; want ErrNotFound", id, n, err)
		}
	}
	got, err := st.UserByID(ctx, "u-a")
	if err != nil || got.Disabled() || got.PasswordHash != "h1" {
		t.Errorf("after refused changes: %+v, %v", got, err)
	}
	checkFamily(t, st, "a1", "")
}

func testSessions(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	if got, err := st.Sessions(ctx, "nobody", T0); err != nil || len(got) != 0 {
		t.Fatalf("Sessions(nobody) = %v, %v", got, err)
	}
	// old: logged in first, refreshed last. mid: logged in later, never
	// refreshed. Then three that are not live and one of someone else.
	old, oldFirst := subjectFamily(t, st, "old", "u", T0)
	mid, _ := subjectFamily(t, st, "mid", "u", T0.Add(time.Minute))
	second := rotate(t, st, oldFirst, "old-1", T0.Add(2*time.Minute))
	subjectFamily(t, st, "revoked", "u", T0.Add(time.Minute))
	if err := st.RevokeFamily(ctx, "revoked", T0.Add(time.Minute), "logout"); err != nil {
		t.Fatal(err)
	}
	f, first := newFamily("past-absolute")
	f.Subject, f.CreatedAt, f.ExpiresAt = "u", T0, T0.Add(3*time.Minute)
	first.IssuedAt, first.ExpiresAt = T0, T0.Add(3*time.Minute)
	if _, err := st.CreateFamilyCapped(ctx, f, first, 0, ""); err != nil {
		t.Fatal(err)
	}
	f, first = newFamily("past-idle")
	f.Subject, f.CreatedAt, f.ExpiresAt = "u", T0, T0.Add(time.Hour)
	first.IssuedAt, first.ExpiresAt = T0, T0.Add(4*time.Minute)
	if _, err := st.CreateFamilyCapped(ctx, f, first, 0, ""); err != nil {
		t.Fatal(err)
	}
	subjectFamily(t, st, "other", "v", T0)

	now := T0.Add(5 * time.Minute)
	got, err := st.Sessions(ctx, "u", now)
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("Sessions = %d, want 2 (old, mid): %+v", len(got), got)
	}
	want := []session.Info{
		{Family: old, LastRefreshedAt: second.IssuedAt, IdleExpiresAt: second.ExpiresAt},
		{Family: mid, LastRefreshedAt: mid.CreatedAt, IdleExpiresAt: mid.CreatedAt.Add(time.Hour)},
	}
	for i, w := range want {
		equalFamily(t, got[i].Family, w.Family)
		checkTime(t, "Info.LastRefreshedAt", got[i].LastRefreshedAt, w.LastRefreshedAt)
		checkTime(t, "Info.IdleExpiresAt", got[i].IdleExpiresAt, w.IdleExpiresAt)
	}
	// At the idle expiry of mid's only token, mid is no longer live.
	got, err = st.Sessions(ctx, "u", T0.Add(time.Minute+time.Hour))
	if err != nil || len(got) != 1 || got[0].ID != "old" {
		t.Errorf("Sessions at mid's idle expiry = %+v, %v; want old alone", got, err)
	}
}

func testRevokeSubject(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	subjectFamily(t, st, "a1", "u", T0)
	subjectFamily(t, st, "a2", "u", T0)
	subjectFamily(t, st, "a3", "u", T0)
	subjectFamily(t, st, "b1", "v", T0)
	if err := st.RevokeFamily(ctx, "a3", T0.Add(time.Second), "reused"); err != nil {
		t.Fatal(err)
	}
	at := T0.Add(time.Minute)
	n, err := st.RevokeSubject(ctx, "u", at, session.RevokeAdmin)
	if err != nil || n != 2 {
		t.Fatalf("RevokeSubject = %d, %v; want 2", n, err)
	}
	checkFamily(t, st, "a1", session.RevokeAdmin)
	checkFamily(t, st, "a2", session.RevokeAdmin)
	checkFamily(t, st, "a3", "reused")
	checkFamily(t, st, "b1", "")
	if f, _ := st.Family(ctx, "a1"); !f.RevokedAt.Equal(at) {
		t.Errorf("a1 revoked at %v, want %v", f.RevokedAt, at)
	}
	if n, err := st.RevokeSubject(ctx, "u", at, session.RevokeAdmin); err != nil || n != 0 {
		t.Errorf("RevokeSubject again = %d, %v; want 0", n, err)
	}
	if n, err := st.RevokeSubject(ctx, "nobody", at, session.RevokeAdmin); err != nil || n != 0 {
		t.Errorf("RevokeSubject(nobody) = %d, %v; want 0, nil", n, err)
	}
}

// cappedFamily is a family and first token of subject for CreateFamilyCapped.
func cappedFamily(id, subject string, at time.Time) (session.Family, session.RefreshToken) {
	f, first := newFamily(id)
	f.Subject, f.CreatedAt, f.ExpiresAt = subject, at, at.Add(24*time.Hour)
	first.IssuedAt, first.ExpiresAt = at, at.Add(time.Hour)
	return f, first
}

func testCreateFamilyCapped(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	create := func(id string, at time.Time, max int) []string {
		t.Helper()
		f, first := cappedFamily(id, "u", at)
		got, err := st.CreateFamilyCapped(ctx, f, first, max, session.RevokeSessionCap)
		if err != nil {
			t.Fatalf("CreateFamilyCapped(%s): %v", id, err)
		}
		return got
	}
	for i, id := range []string{"s1", "s2", "s3"} {
		if got := create(id, T0.Add(time.Duration(i)*time.Minute), 3); len(got) != 0 {
			t.Fatalf("CreateFamilyCapped(%s) under the cap revoked %v", id, got)
		}
	}
	// s1 is refreshed, so s2 becomes the least recently used.
	toks, err := st.FamilyTokens(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	rotate(t, st, toks[0], "s1-1", T0.Add(5*time.Minute))
	// Dead sessions do not count against the cap: a revoked one and one
	// past its idle expiry.
	subjectFamily(t, st, "gone", "u", T0)
	if err := st.RevokeFamily(ctx, "gone", T0, "logout"); err != nil {
		t.Fatal(err)
	}
	f, first := newFamily("idle")
	f.Subject, f.CreatedAt, f.ExpiresAt = "u", T0, T0.Add(24*time.Hour)
	first.IssuedAt, first.ExpiresAt = T0, T0.Add(time.Minute)
	if _, err := st.CreateFamilyCapped(ctx, f, first, 0, ""); err != nil {
		t.Fatal(err)
	}
	subjectFamily(t, st, "other", "v", T0)

	at := T0.Add(10 * time.Minute)
	if got := create("s4", at, 3); fmt.Sprint(got) != "[s2]" {
		t.Fatalf("CreateFamilyCapped(s4) revoked %v, want [s2]", got)
	}
	checkFamily(t, st, "s2", session.RevokeSessionCap)
	if f, _ := st.Family(ctx, "s2"); !f.RevokedAt.Equal(at) {
		t.Errorf("s2 revoked at %v, want %v", f.RevokedAt, at)
	}
	for _, id := range []string{"s1", "s3", "s4", "idle", "other"} {
		checkFamily(t, st, id, "")
	}
	checkFamily(t, st, "gone", "logout")
	// A lower cap revokes more, oldest first; the new family is kept.
	if got := create("s5", at.Add(time.Minute), 2); fmt.Sprint(got) != "[s1 s3]" && fmt.Sprint(got) != "[s3 s1]" {
		t.Fatalf("CreateFamilyCapped(s5, max 2) revoked %v, want s1 and s3", got)
	}
	live, err := st.Sessions(ctx, "u", at.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 2 || live[0].ID != "s5" || live[1].ID != "s4" {
		t.Errorf("live after s5 = %+v, want s5, s4", live)
	}
	// No cap: nothing revoked.
	for i := range 3 {
		if got := create(fmt.Sprintf("n%d", i), at.Add(2*time.Minute), 0); len(got) != 0 {
			t.Errorf("CreateFamilyCapped with max 0 revoked %v", got)
		}
	}
	// The family and its token are stored as with no cap.
	f, first = cappedFamily("s6", "u", at.Add(3*time.Minute))
	f.ClientID = "cli"
	if _, err := st.CreateFamilyCapped(ctx, f, first, 100, session.RevokeSessionCap); err != nil {
		t.Fatal(err)
	}
	got, err := st.Family(ctx, "s6")
	if err != nil {
		t.Fatal(err)
	}
	equalFamily(t, got, f)
	toks, err = st.FamilyTokens(ctx, "s6")
	if err != nil || len(toks) != 1 {
		t.Fatalf("FamilyTokens(s6) = %v, %v", toks, err)
	}
	equalToken(t, toks[0], first)
	// A duplicate family ID is refused and revokes nothing.
	f, first = cappedFamily("s6", "u", at.Add(4*time.Minute))
	first.Hash = Hash("another")
	if _, err := st.CreateFamilyCapped(ctx, f, first, 1, session.RevokeSessionCap); err == nil {
		t.Error("CreateFamilyCapped with a taken family ID succeeded")
	}
	checkFamily(t, st, "s6", "")
}

// raceCapped makes n logins of one subject at once through the given
// stores, with the cap max: afterwards exactly max are live, each revoked
// family was revoked by exactly one login, and no login's own family was
// revoked by itself.
func raceCapped(t *testing.T, stores []store.Store, n, max int) {
	t.Helper()
	ctx := context.Background()
	// Some live sessions from before.
	for i := range max {
		f, first := cappedFamily(fmt.Sprintf("pre-%d", i), "u", T0)
		if _, err := stores[0].CreateFamilyCapped(ctx, f, first, max, session.RevokeSessionCap); err != nil {
			t.Fatal(err)
		}
	}
	victims := make([][]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			id := fmt.Sprintf("new-%d", i)
			f, first := cappedFamily(id, "u", T0.Add(time.Duration(i+1)*time.Millisecond))
			victims[i], errs[i] = stores[i%len(stores)].CreateFamilyCapped(ctx, f, first, max, session.RevokeSessionCap)
		})
	}
	close(start)
	wg.Wait()
	seen := map[string]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("login %d: %v", i, errs[i])
		}
		for _, v := range victims[i] {
			seen[v]++
			if v == fmt.Sprintf("new-%d", i) {
				t.Errorf("login %d revoked its own family", i)
			}
		}
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("family %s reported revoked by %d logins", id, c)
		}
	}
	if len(seen) != n {
		t.Errorf("%d families revoked, want %d", len(seen), n)
	}
	live, err := stores[0].Sessions(ctx, "u", T0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != max {
		t.Errorf("%d live sessions after %d concurrent logins, want the cap %d", len(live), n, max)
	}
	for _, in := range live {
		if seen[in.ID] != 0 {
			t.Errorf("family %s reported revoked but live", in.ID)
		}
	}
}

func testCreateFamilyCappedConcurrent(t *testing.T, s *suite) {
	raceCapped(t, []store.Store{s.open(t)}, 24, 3)
}

func testCreateFamilyCappedConcurrentTwoStores(t *testing.T, s *suite) {
	st := s.open(t)
	raceCapped(t, []store.Store{st, s.reopen(t, unwrapStore(st))}, 24, 3)
}

func testDeleteSpentTokens(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	// A chain of five tokens, each valid for an hour from its issue, and
	// the last one unconsumed; and a family whose only token is unconsumed
	// and past its idle expiry.
	f, tok := subjectFamily(t, st, "chain", "u", T0)
	chain := []session.RefreshToken{tok}
	for i := 1; i < 5; i++ {
		tok = rotate(t, st, tok, fmt.Sprintf("chain-%d", i), T0.Add(time.Duration(i)*10*time.Minute))
		chain = append(chain, tok)
	}
	subjectFamily(t, st, "idle", "u", T0)
	// Cut just after the idle expiry of generation 1: generations 0 and 1
	// go; 2 and 3 (consumed, not yet past expiry) and 4 (unconsumed) stay.
	cut := chain[1].ExpiresAt.Add(time.Microsecond)
	n, err := st.DeleteSpentTokens(ctx, cut)
	if err != nil || n != 2 {
		t.Fatalf("DeleteSpentTokens = %d, %v; want 2", n, err)
	}
	toks, err := st.FamilyTokens(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 3 || toks[0].Generation != 2 {
		t.Fatalf("after DeleteSpentTokens: %d tokens from generation %d, want 3 from 2", len(toks), toks[0].Generation)
	}
	for i, tk := range toks {
		equalToken(t, tk, storedAfterRotation(chain, i+2))
	}
	if toks, _ := st.FamilyTokens(ctx, "idle"); len(toks) != 1 {
		t.Errorf("the unconsumed token of idle was deleted")
	}
	// A deleted token is unknown; the chain goes on from its newest token.
	err = st.Exchange(ctx, chain[0].Hash, func(session.Chain) (session.Change, error) { return session.Change{}, nil })
	if !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Exchange of a deleted token: %v, want ErrNotFound", err)
	}
	rotate(t, st, chain[4], "chain-5", cut)
	if n, err := st.DeleteSpentTokens(ctx, cut); err != nil || n != 0 {
		t.Errorf("second DeleteSpentTokens = %d, %v; want 0", n, err)
	}
	checkFamily(t, st, f.ID, "")
}

// storedAfterRotation is chain[i] as stored once its successor exists.
func storedAfterRotation(chain []session.RefreshToken, i int) session.RefreshToken {
	t := chain[i]
	if i+1 < len(chain) {
		t.ConsumedAt = chain[i+1].IssuedAt
		t.SuccessorHash = chain[i+1].Hash
	}
	return t
}

// RowsPerSession returns the stored rows (the family and its tokens) of
// each live session after refreshing every one of them each interval for
// the given time with the default lifetimes, sweeping every hour as
// server.CollectExpired does, on a simulated clock.
func RowsPerSession(t testing.TB, st store.Store, sessions int, interval, total time.Duration) (rows []int) {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(T0)
	e, err := session.NewEngine(ctx, st, CountingMinter(), session.Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	rts := make([]string, sessions)
	ids := make([]string, sessions)
	for i := range rts {
		g, err := e.Login(ctx, fmt.Sprintf("user-%d", i), "")
		if err != nil {
			t.Fatal(err)
		}
		rts[i], ids[i] = g.RefreshToken, g.Family.ID
	}
	var lastSweep time.Duration
	for at := interval; at <= total; at += interval {
		clk.Advance(interval)
		for i, rt := range rts {
			g, err := e.Refresh(ctx, rt, "")
			if err != nil {
				t.Fatalf("refresh at %v: %v", at, err)
			}
			rts[i] = g.RefreshToken
		}
		if at-lastSweep >= time.Hour {
			lastSweep = at
			if _, err := st.DeleteExpired(ctx, clk.Now()); err != nil {
				t.Fatal(err)
			}
			if _, err := st.DeleteSpentTokens(ctx, clk.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range ids {
		toks, err := st.FamilyTokens(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, 1+len(toks))
	}
	return rows
}

func testRowsPerSession(t *testing.T, s *suite) {
	if testing.Short() {
		t.Skip("a month of simulated refreshes")
	}
	const interval = 30 * time.Minute
	// Consumed tokens are kept for their idle lifetime, in which a replay
	// is still detected as reuse; after it they go.
	kept := int(session.DefaultRefreshTTL / interval)
	// 29 days: the family's absolute lifetime (30 days) ends the day after.
	for _, days := range []int{1, 8, 29} {
		rows := RowsPerSession(t, s.open(t), 2, interval, time.Duration(days)*24*time.Hour)
		refreshes := days * 24 * int(time.Hour/interval)
		// The family, the tokens of the last idle lifetime (or all of
		// them), and up to one hour of sweep lag.
		bound := 1 + min(refreshes, kept) + 1 + int(time.Hour/interval)
		for _, n := range rows {
			if n > bound {
				t.Errorf("after %d days of %v refreshes: %d rows per session, want at most %d", days, interval, n, bound)
			}
		}
		t.Logf("after %d day(s) of refreshes every %v: %d rows per session (%d refreshes; %d rows without the sweep)", days, interval, rows[0], refreshes, refreshes+2)
	}
}
