package storetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

func testPing(t *testing.T, s *suite) {
	st := s.open(t)
	if err := st.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := st.Ping(context.Background()); err == nil {
		t.Error("Ping after Close succeeded")
	}
}

func testDurability(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	if s.h.Reopen == nil {
		t.Skip("Harness.Reopen is nil")
	}
	f, first := mustCreate(t, st, "kept")
	second := rotate(t, st, first, "kept-1", T0.Add(time.Minute))
	g, _ := mustCreate(t, st, "revoked")
	if err := st.RevokeFamily(ctx, g.ID, T0.Add(time.Minute), "logout"); err != nil {
		t.Fatal(err)
	}
	secret, err := st.LoadOrStoreSecret(ctx, "rotation", bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	seed := sha256.Sum256([]byte("key"))
	key := token.Key{ID: "kid", Algorithm: token.AlgEdDSA, PrivateKey: ed25519.NewKeyFromSeed(seed[:]), CreatedAt: T0}
	if err := st.AddSigningKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	u := user.User{ID: "u", Username: "carol", PasswordHash: "h", CreatedAt: T0}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	re := s.reopen(t, unwrapStore(st))
	fam, err := re.Family(ctx, f.ID)
	if err != nil {
		t.Fatalf("Family after reopen: %v", err)
	}
	equalFamily(t, fam, f)
	toks, err := re.FamilyTokens(ctx, f.ID)
	if err != nil || len(toks) != 2 {
		t.Fatalf("FamilyTokens after reopen = %d, %v; want 2 tokens", len(toks), err)
	}
	equalToken(t, toks[1], second)
	if !bytes.Equal(toks[0].SuccessorHash, second.Hash) || !toks[0].Consumed() {
		t.Errorf("first token after reopen = %+v, want consumed with successor", toks[0])
	}
	rev, err := re.Family(ctx, g.ID)
	if err != nil || !rev.Revoked() || rev.RevokeReason != "logout" {
		t.Errorf("revoked family after reopen = %+v, %v", rev, err)
	}
	if got, err := re.LoadOrStoreSecret(ctx, "rotation", []byte("new candidate")); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("secret after reopen = %x, %v; want %x", got, err, secret)
	}
	if keys, err := re.SigningKeys(ctx); err != nil || len(keys) != 1 || keys[0].ID != "kid" || !key.PrivateKey.Equal(keys[0].PrivateKey) {
		t.Errorf("signing keys after reopen = %v, %v", keys, err)
	}
	if got, err := re.UserByName(ctx, "carol"); err != nil || got.ID != "u" {
		t.Errorf("user after reopen = %+v, %v", got, err)
	}
	// The reopened store goes on rotating where the first left off.
	rotate(t, re, second, "kept-2", T0.Add(2*time.Minute))
}
