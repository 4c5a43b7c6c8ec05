package admin_test

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/admin"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store/memstore"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

var cheap = user.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

func FuzzValidSessionID(f *testing.F) {
	for _, s := range []string{token.NewID(), "", "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAB", "AAAAAAAAAAAAAAAAAAAAAA==",
		"AAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAA", "a+b/AAAAAAAAAAAAAAAAAA", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := admin.ValidSessionID(id)
		if err != nil {
			if !errors.Is(err, admin.ErrInvalid) {
				t.Fatalf("ValidSessionID(%q) = %v, not ErrInvalid", id, err)
			}
			return
		}
		b, derr := base64.RawURLEncoding.DecodeString(id)
		if derr != nil || len(b) != 16 || base64.RawURLEncoding.EncodeToString(b) != id {
			t.Fatalf("ValidSessionID accepted %q", id)
		}
	})
}

func TestValidSessionIDAcceptsNewID(t *testing.T) {
	for range 1000 {
		if id := token.NewID(); admin.ValidSessionID(id) != nil {
			t.Fatalf("ValidSessionID refused %q from token.NewID", id)
		}
	}
}

// TestOperator: the operations on a real (in-memory) store, and what each
// refuses without writing.
func TestOperator(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	op := &admin.Operator{Store: st, Now: func() time.Time { return now }, Params: cheap}
	u, err := op.AddUser(ctx, "alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.AddUser(ctx, "alice", "pw"); !errors.Is(err, admin.ErrUserExists) {
		t.Errorf("AddUser of a taken name: %v", err)
	}
	for _, c := range []struct{ name, pw string }{{"a b", "pw"}, {"", "pw"}, {"bob", ""}, {"bob", string(make([]byte, user.MaxPasswordLen+1))}} {
		if _, err := op.AddUser(ctx, c.name, c.pw); !errors.Is(err, admin.ErrInvalid) {
			t.Errorf("AddUser(%q, %d bytes): %v, want ErrInvalid", c.name, len(c.pw), err)
		}
	}
	f := session.Family{ID: token.NewID(), Subject: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	first := session.RefreshToken{Hash: token.HashRefreshToken("rt"), FamilyID: f.ID, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	if _, err := st.CreateFamilyCapped(ctx, f, first, 0, ""); err != nil {
		t.Fatal(err)
	}
	if ss, err := op.Sessions(ctx, "alice"); err != nil || len(ss) != 1 || ss[0].ID != f.ID {
		t.Fatalf("Sessions = %+v, %v", ss, err)
	}
	res, err := op.DisableUser(ctx, "alice")
	if err != nil || !res.Changed || res.Revoked != 1 {
		t.Fatalf("DisableUser = %+v, %v", res, err)
	}
	if got, _ := st.Family(ctx, f.ID); got.RevokeReason != session.RevokeUserDisabled {
		t.Errorf("family after disable: %+v", got)
	}
	if res, err := op.DisableUser(ctx, "alice"); err != nil || res.Changed {
		t.Errorf("DisableUser again = %+v, %v; want no change", res, err)
	}
	// A session stored behind the Operator's back for a disabled user is
	// revoked by disabling again.
	g := session.Family{ID: token.NewID(), Subject: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	gt := session.RefreshToken{Hash: token.HashRefreshToken("rt2"), FamilyID: g.ID, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	if _, err := st.CreateFamilyCapped(ctx, g, gt, 0, ""); err != nil {
		t.Fatal(err)
	}
	if res, err := op.DisableUser(ctx, "alice"); err != nil || !res.Changed || res.Revoked != 1 {
		t.Errorf("DisableUser with a straggler = %+v, %v; want it revoked", res, err)
	}
	if _, err := user.Authenticate(ctx, st, "alice", "pw"); !errors.Is(err, user.ErrDisabled) || !errors.Is(err, user.ErrInvalidCredentials) {
		t.Errorf("Authenticate of a disabled user: %v", err)
	}
	if res, err := op.EnableUser(ctx, "alice"); err != nil || !res.Changed {
		t.Errorf("EnableUser = %+v, %v", res, err)
	}
	if _, err := user.Authenticate(ctx, st, "alice", "pw"); err != nil {
		t.Errorf("Authenticate after enable: %v", err)
	}
	if _, err := op.SetPassword(ctx, "alice", ""); !errors.Is(err, admin.ErrInvalid) {
		t.Errorf("SetPassword empty: %v", err)
	}
	if _, err := op.SetPassword(ctx, "alice", "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := user.Authenticate(ctx, st, "alice", "new"); err != nil {
		t.Errorf("Authenticate with the new password: %v", err)
	}
	for _, call := range []func() error{
		func() error { _, err := op.DisableUser(ctx, "nobody"); return err },
		func() error { _, err := op.DeleteUser(ctx, "nobody"); return err },
		func() error { _, err := op.Sessions(ctx, "nobody"); return err },
		func() error { _, err := op.RevokeUserSessions(ctx, "nobody"); return err },
	} {
		if err := call(); !errors.Is(err, admin.ErrUnknownUser) {
			t.Errorf("on an unknown user: %v, want ErrUnknownUser", err)
		}
	}
	if _, err := op.RevokeSession(ctx, token.NewID()); !errors.Is(err, admin.ErrUnknownSession) {
		t.Errorf("RevokeSession(unknown): %v", err)
	}
	if _, err := op.RevokeSession(ctx, "x"); !errors.Is(err, admin.ErrInvalid) {
		t.Errorf("RevokeSession(malformed): %v", err)
	}
	if res, err := op.DeleteUser(ctx, "alice"); err != nil || !res.Changed {
		t.Errorf("DeleteUser = %+v, %v", res, err)
	}
	if us, _ := op.Users(ctx); len(us) != 0 {
		t.Errorf("users after delete: %+v", us)
	}
}
