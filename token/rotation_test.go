package token

import (
	"errors"
	"testing"
	"time"
)

func TestStagedRotation(t *testing.T) {
	ctx := t.Context()
	ks := &memKeyStore{}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := EnsureSigningKey(ctx, ks, t0); err != nil {
		t.Fatal(err)
	}
	first, _ := ks.SigningKeys(ctx)
	p := RotationPolicy{AccessTTL: 10 * time.Minute, Leeway: 5 * time.Second}

	t1 := t0.Add(time.Hour)
	rot, err := Rotate(ctx, ks, t1, p)
	if err != nil {
		t.Fatal(err)
	}
	wantRemovable := t1.Add(IssuerMaxAge + 10*time.Minute + 5*time.Second)
	if !rot.New.Signing || len(rot.Retired) != 1 || rot.Retired[0].ID != first[0].ID ||
		!rot.Retired[0].RetiredAt.Equal(t1) || !rot.Retired[0].RemovableAt.Equal(wantRemovable) {
		t.Fatalf("rotation %+v; want the first key retired at %v, removable at %v", rot, t1, wantRemovable)
	}
	// Rotate only adds.
	if keys, _ := ks.SigningKeys(ctx); len(keys) != 2 {
		t.Fatalf("%d keys after a rotation, want 2", len(keys))
	}

	// Before the old key's last token can have expired, Retire keeps it.
	gone, err := Retire(ctx, ks, wantRemovable.Add(-time.Microsecond), p)
	if err != nil || len(gone) != 0 {
		t.Fatalf("early Retire deleted %+v, %v", gone, err)
	}
	// A second rotation before then: the first key keeps its instant, the
	// second is retired from now.
	t2 := t1.Add(time.Minute)
	rot2, err := Rotate(ctx, ks, t2, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(rot2.Retired) != 2 || !rot2.Retired[0].RemovableAt.Equal(t2.Add(p.AccessTTL+IssuerMaxAge+5*time.Second)) ||
		!rot2.Retired[1].RemovableAt.Equal(wantRemovable) {
		t.Fatalf("second rotation %+v", rot2)
	}
	gone, err = Retire(ctx, ks, wantRemovable, p)
	if err != nil || len(gone) != 1 || gone[0].ID != first[0].ID {
		t.Fatalf("Retire at the instant deleted %+v, %v; want the first key", gone, err)
	}
	infos, err := Keys(ctx, ks, p)
	if err != nil || len(infos) != 2 || infos[0].ID != rot2.New.ID || !infos[0].Signing || infos[1].ID != rot.New.ID || infos[1].Signing {
		t.Fatalf("Keys = %+v, %v", infos, err)
	}
	// The issuer signs with the key the rotation added.
	iss := NewIssuer(ks, "https://iss", []string{"aud"})
	if kid, err := iss.KeyID(ctx); err != nil || kid != rot2.New.ID {
		t.Fatalf("issuer signs with %q, %v; want %q", kid, err, rot2.New.ID)
	}
}

func TestRotateWithAClockThatWentBack(t *testing.T) {
	ctx := t.Context()
	ks := &memKeyStore{}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := EnsureSigningKey(ctx, ks, t0); err != nil {
		t.Fatal(err)
	}
	rot, err := Rotate(ctx, ks, t0.Add(-time.Hour), RotationPolicy{AccessTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !rot.New.CreatedAt.After(t0) || !rot.New.Signing {
		t.Fatalf("new key created %v, not after the newest %v", rot.New.CreatedAt, t0)
	}
}

func TestForceRetire(t *testing.T) {
	ctx := t.Context()
	ks := &memKeyStore{}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := EnsureSigningKey(ctx, ks, now); err != nil {
		t.Fatal(err)
	}
	signing, _ := ks.SigningKeys(ctx)
	if _, err := ForceRetire(ctx, ks, signing[0].ID); !errors.Is(err, ErrSigningKeyInUse) {
		t.Fatalf("force retiring the signing key: %v, want ErrSigningKeyInUse", err)
	}
	if _, err := ForceRetire(ctx, ks, "no-such-kid"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("force retiring an unknown key: %v, want ErrKeyNotFound", err)
	}
	p := RotationPolicy{AccessTTL: time.Hour}
	a, _ := Rotate(ctx, ks, now.Add(time.Second), p)
	b, _ := Rotate(ctx, ks, now.Add(2*time.Second), p)
	// A named key only, and nothing else.
	gone, err := ForceRetire(ctx, ks, a.New.ID)
	if err != nil || len(gone) != 1 || gone[0].ID != a.New.ID {
		t.Fatalf("ForceRetire(a) = %+v, %v", gone, err)
	}
	// A refused ID deletes nothing, even beside a good one.
	if _, err := ForceRetire(ctx, ks, signing[0].ID, b.New.ID); !errors.Is(err, ErrSigningKeyInUse) {
		t.Fatalf("err %v", err)
	}
	if keys, _ := ks.SigningKeys(ctx); len(keys) != 2 {
		t.Fatalf("%d keys left, want 2 (the first and b)", len(keys))
	}
	// No IDs: every retired key.
	gone, err = ForceRetire(ctx, ks)
	if err != nil || len(gone) != 1 || gone[0].ID != signing[0].ID {
		t.Fatalf("ForceRetire() = %+v, %v", gone, err)
	}
	if keys, _ := ks.SigningKeys(ctx); len(keys) != 1 || keys[0].ID != b.New.ID {
		t.Fatalf("keys left %+v, want b only", keys)
	}
}

func TestRotationPolicyIsChecked(t *testing.T) {
	ks := &memKeyStore{}
	for _, p := range []RotationPolicy{{}, {AccessTTL: -time.Second}, {AccessTTL: time.Minute, Leeway: -1}} {
		if _, err := Rotate(t.Context(), ks, time.Now(), p); err == nil {
			t.Errorf("Rotate with policy %+v: no error", p)
		}
	}
	if keys, _ := ks.SigningKeys(t.Context()); len(keys) != 0 {
		t.Fatal("a refused rotation added a key")
	}
	if got, _ := (RotationPolicy{AccessTTL: time.Minute}).validate(); got.Leeway != MaxLeeway {
		t.Fatalf("zero leeway means %v, want MaxLeeway", got.Leeway)
	}
}
