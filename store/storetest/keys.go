package storetest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/token"
)

func testSigningKeys(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	if keys, err := st.SigningKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("SigningKeys on an empty store = %d keys, %v", len(keys), err)
	}
	newKey := func(id string, created time.Time) token.Key {
		seed := sha256.Sum256([]byte(id))
		return token.Key{ID: id, Algorithm: token.AlgEdDSA, PrivateKey: ed25519.NewKeyFromSeed(seed[:]), CreatedAt: created}
	}
	// Added out of order: the list is by CreatedAt, newest first.
	k1 := newKey("k1", T0)
	k3 := newKey("k3", T0.Add(2*time.Hour))
	k2 := newKey("k2", T0.Add(time.Hour+time.Microsecond))
	for _, k := range []token.Key{k1, k3, k2} {
		if err := st.AddSigningKey(ctx, k); err != nil {
			t.Fatalf("AddSigningKey(%s): %v", k.ID, err)
		}
	}
	check := func(want ...token.Key) {
		t.Helper()
		got, err := st.SigningKeys(ctx)
		if err != nil {
			t.Fatalf("SigningKeys: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("SigningKeys = %d keys, want %d", len(got), len(want))
		}
		for i := range want {
			checkTime(t, "Key.CreatedAt", got[i].CreatedAt, want[i].CreatedAt)
			if got[i].ID != want[i].ID || got[i].Algorithm != want[i].Algorithm || !want[i].PrivateKey.Equal(got[i].PrivateKey) {
				t.Errorf("key %d = %s/%s, want %s/%s (or private key differs)", i, got[i].ID, got[i].Algorithm, want[i].ID, want[i].Algorithm)
			}
		}
	}
	check(k3, k2, k1)
	if err := st.AddSigningKey(ctx, newKey("k1", T0.Add(3*time.Hour))); err == nil {
		t.Error("AddSigningKey with a taken ID succeeded")
	}
	if err := st.DeleteSigningKey(ctx, "k2"); err != nil {
		t.Fatalf("DeleteSigningKey: %v", err)
	}
	check(k3, k1)
	if err := st.DeleteSigningKey(ctx, "k2"); !errors.Is(err, token.ErrKeyNotFound) {
		t.Errorf("DeleteSigningKey twice error = %v, want ErrKeyNotFound", err)
	}
	if err := st.DeleteSigningKey(ctx, "never"); !errors.Is(err, token.ErrKeyNotFound) {
		t.Errorf("DeleteSigningKey(unknown) error = %v, want ErrKeyNotFound", err)
	}
}
