package server_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/token"
)

// kidOf returns the "kid" of a JWT's header.
func kidOf(t *testing.T, jwt string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct{ Kid string }
	if err := json.Unmarshal(h, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

func (e *env) jwksKids() []string {
	e.t.Helper()
	var set struct{ Keys []struct{ Kid string } }
	r := e.get("/.well-known/jwks.json", "")
	if err := json.Unmarshal(r.raw, &set); err != nil {
		e.t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// TestStagedKeyRotation: the new key is published and signs at once; the
// old one verifies the tokens it signed until the last of them can have
// expired, and only then does the retire step delete it.
func TestStagedKeyRotation(t *testing.T) {
	e := newEnv(t) // AccessTTL 1m
	ctx := t.Context()
	oldAccess, rt := e.login()
	oldKid := kidOf(t, oldAccess)

	rot, err := e.srv.RotateSigningKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rot.Retired) != 1 || rot.Retired[0].ID != oldKid {
		t.Fatalf("rotation retired %+v, want the key %s", rot.Retired, oldKid)
	}
	// now + AccessTTL + the most leeway any verifier allows, plus the time
	// another replica's issuer may go on signing with the old key.
	wantRemovable := rot.New.CreatedAt.Add(time.Minute + token.MaxLeeway + token.IssuerMaxAge)
	if !rot.Retired[0].RemovableAt.Equal(wantRemovable) {
		t.Fatalf("removable at %v, want %v", rot.Retired[0].RemovableAt, wantRemovable)
	}
	if kids := e.jwksKids(); len(kids) != 2 {
		t.Fatalf("JWKS after rotation: %v, want both keys", kids)
	}
	newAccess := e.refresh(rt).body["accessToken"].(string)
	if kidOf(t, newAccess) != rot.New.ID {
		t.Fatalf("refresh after rotation signed with %s, want the new key %s", kidOf(t, newAccess), rot.New.ID)
	}
	for _, tok := range []string{oldAccess, newAccess} {
		if r := e.get("/api/me", tok); r.status != 200 {
			t.Fatalf("token of key %s during the rotation: %d %s", kidOf(t, tok), r.status, r.raw)
		}
	}

	// Too early: the retire step deletes nothing.
	e.clock.Advance(time.Minute)
	if gone, err := e.srv.RetireSigningKeys(ctx); err != nil || len(gone) != 0 {
		t.Fatalf("early retire: %+v, %v", gone, err)
	}
	if len(e.jwksKids()) != 2 {
		t.Fatal("early retire removed a key from the JWKS")
	}
	e.clock.Advance(token.MaxLeeway + token.IssuerMaxAge)
	gone, err := e.srv.RetireSigningKeys(ctx)
	if err != nil || len(gone) != 1 || gone[0].ID != oldKid {
		t.Fatalf("retire once safe: %+v, %v; want %s", gone, err, oldKid)
	}
	if kids := e.jwksKids(); len(kids) != 1 || kids[0] != rot.New.ID {
		t.Fatalf("JWKS after retire: %v, want only %s", kids, rot.New.ID)
	}
	// The signing key cannot be retired, even by force.
	if _, err := e.srv.ForceRetireSigningKeys(ctx, rot.New.ID); !errors.Is(err, token.ErrSigningKeyInUse) {
		t.Fatalf("force retiring the signing key: %v", err)
	}
}

// TestRotationUnderLoad: sessions refresh and use each new access token at
// once while the key rotates again and again: every token the server mints
// verifies on the server at once, because its verifier learns each new key
// before its issuer signs with it.
func TestRotationUnderLoad(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	const sessions = 4
	refresh := make([]string, sessions)
	for i := range refresh {
		_, refresh[i] = e.login()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range sessions {
		wg.Go(func() {
			rt := refresh[i]
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := e.refresh(rt)
				if r.status != 200 {
					t.Errorf("refresh: %d %s", r.status, r.raw)
					return
				}
				rt = r.body["refreshToken"].(string)
				if me := e.get("/api/me", r.body["accessToken"].(string)); me.status != 200 {
					t.Errorf("a token just minted is refused: %d %s", me.status, me.raw)
					return
				}
			}
		})
	}
	for range 20 {
		if _, err := e.srv.RotateSigningKey(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}
