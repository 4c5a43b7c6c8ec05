package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
)

// T0 is the base instant of the suite: microsecond-precise and not in UTC,
// so that a store dropping precision or the UTC conversion fails.
var T0 = time.Date(2031, time.March, 4, 5, 6, 7, 890123000, time.FixedZone("UTC+05:30", 5*3600+1800))

// Hash is the SHA-256 of s, the stored form of a refresh token s.
func Hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// newFamily returns a family and its first token, valid from T0 for a day.
func newFamily(id string) (session.Family, session.RefreshToken) {
	f := session.Family{
		ID:        id,
		Subject:   "user-" + id,
		ClientID:  "client-" + id,
		CreatedAt: T0,
		ExpiresAt: T0.Add(24 * time.Hour),
	}
	return f, session.RefreshToken{
		Hash:      Hash("rt-" + id + "-0"),
		FamilyID:  id,
		IssuedAt:  T0,
		ExpiresAt: T0.Add(time.Hour),
	}
}

func mustCreate(t *testing.T, st store.Store, id string) (session.Family, session.RefreshToken) {
	t.Helper()
	f, first := newFamily(id)
	if _, err := st.CreateFamilyCapped(context.Background(), f, first, 0, ""); err != nil {
		t.Fatalf("CreateFamily(%s): %v", id, err)
	}
	return f, first
}

// successorOf is the token that rotating tok at the given instant inserts.
func successorOf(tok session.RefreshToken, name string, at time.Time) *session.RefreshToken {
	return &session.RefreshToken{
		Hash:       Hash(name),
		FamilyID:   tok.FamilyID,
		Generation: tok.Generation + 1,
		IssuedAt:   at,
		ExpiresAt:  at.Add(time.Hour),
	}
}

// rotate consumes tok at the given instant for a successor named name, and
// fails the test unless tok was unconsumed.
func rotate(t *testing.T, st store.Store, tok session.RefreshToken, name string, at time.Time) session.RefreshToken {
	t.Helper()
	next := successorOf(tok, name, at)
	err := st.Exchange(context.Background(), tok.Hash, func(c session.Chain) (session.Change, error) {
		if c.Token.Consumed() {
			return session.Change{}, errors.New("token already consumed")
		}
		return session.Change{Consume: next, ConsumedAt: at}, nil
	})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	return *next
}

// equalFamily fails the test unless got is want with times in UTC.
func equalFamily(t *testing.T, got, want session.Family) {
	t.Helper()
	checkTime(t, "Family.CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "Family.ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	checkTime(t, "Family.RevokedAt", got.RevokedAt, want.RevokedAt)
	if got.ID != want.ID || got.Subject != want.Subject || got.ClientID != want.ClientID || got.RevokeReason != want.RevokeReason ||
		got.KeyThumbprint != want.KeyThumbprint {
		t.Errorf("family = %+v, want %+v", got, want)
	}
}

// equalToken fails the test unless got is want with times in UTC.
func equalToken(t *testing.T, got, want session.RefreshToken) {
	t.Helper()
	checkTime(t, "RefreshToken.IssuedAt", got.IssuedAt, want.IssuedAt)
	checkTime(t, "RefreshToken.ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	checkTime(t, "RefreshToken.ConsumedAt", got.ConsumedAt, want.ConsumedAt)
	if !bytes.Equal(got.Hash, want.Hash) || got.FamilyID != want.FamilyID || got.Generation != want.Generation ||
		!bytes.Equal(got.SuccessorHash, want.SuccessorHash) {
		t.Errorf("token = %+v, want %+v", got, want)
	}
}

// checkTime fails the test unless got is the instant want, in UTC (or both
// are zero).
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want the zero time", what, got)
		}
		return
	}
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
	if got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, got.Location())
	}
}

// checkStored fails the test unless the family stored under want.ID is want
// and its tokens are exactly toks, in generation order: the check that a
// call wrote what it should and nothing else.
func checkStored(t *testing.T, st store.Store, want session.Family, toks ...session.RefreshToken) {
	t.Helper()
	ctx := context.Background()
	got, err := st.FamilyTokens(ctx, want.ID)
	if err != nil {
		t.Fatalf("FamilyTokens: %v", err)
	}
	if len(got) != len(toks) {
		t.Fatalf("FamilyTokens = %d tokens, want %d", len(got), len(toks))
	}
	for i := range toks {
		equalToken(t, got[i], toks[i])
	}
	fam, err := st.Family(ctx, want.ID)
	if err != nil {
		t.Fatalf("Family: %v", err)
	}
	equalFamily(t, fam, want)
}
