package memstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
)

// Exchange reads the chain of the token whose hash is given, calls decide
// and applies its Change while holding the lock of the data, so no other
// call on any handle runs in between. decide is called at most once, and
// must not call the Store.
func (s *Store) Exchange(ctx context.Context, tokenHash []byte, decide func(session.Chain) (session.Change, error)) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	t, ok := s.db.tokens[string(tokenHash)]
	if !ok {
		return fmt.Errorf("memstore: exchange: %w", session.ErrNotFound)
	}
	c := session.Chain{Family: s.db.families[t.FamilyID], Token: cloneToken(t)}
	if err := s.db.chainAttributesLocked(&c); err != nil {
		return fmt.Errorf("memstore: exchange: %w", err)
	}
	if t.Consumed() {
		if succ, ok := s.db.tokens[string(t.SuccessorHash)]; ok {
			succ = cloneToken(succ)
			c.Successor = &succ
		}
	}
	ch, err := decide(c)
	if err != nil {
		return err
	}
	// Check the whole Change before writing any of it.
	if ch.Consume != nil {
		next := *ch.Consume
		switch {
		case ch.ConsumedAt.IsZero():
			return errInvalid("exchange: consume with zero ConsumedAt")
		case t.Consumed():
			return errInvalid("exchange: consume of a token already consumed")
		}
		if err := next.Check(); err != nil {
			return fmt.Errorf("memstore: exchange: successor: %w", err)
		}
		if _, ok := s.db.tokens[string(next.Hash)]; ok {
			return errInvalid("exchange: successor already exists")
		}
	}
	if ch.Revoke && ch.RevokeAt.IsZero() {
		return errInvalid("exchange: revoke with zero RevokeAt")
	}
	if ch.Consume != nil {
		t.ConsumedAt = utc(ch.ConsumedAt)
		t.SuccessorHash = bytes.Clone(ch.Consume.Hash)
		s.db.tokens[string(tokenHash)] = t
		next := *ch.Consume
		next.FamilyID = t.FamilyID
		s.db.insertLocked(next)
	}
	if ch.Revoke {
		s.db.revokeLocked(t.FamilyID, ch.RevokeAt, ch.RevokeReason)
	}
	return nil
}

// Family returns the family with the given ID, or an error wrapping
// session.ErrNotFound.
func (s *Store) Family(ctx context.Context, id string) (session.Family, error) {
	if err := s.lock(ctx); err != nil {
		return session.Family{}, err
	}
	defer s.db.mu.Unlock()
	f, ok := s.db.families[id]
	if !ok {
		return session.Family{}, fmt.Errorf("memstore: family: %w", session.ErrNotFound)
	}
	return f, nil
}

// RevokeFamily revokes the family with the given ID at the given instant.
// A family already revoked keeps its first revocation; an unknown ID
// returns an error wrapping session.ErrNotFound.
func (s *Store) RevokeFamily(ctx context.Context, id string, at time.Time, reason string) error {
	if at.IsZero() {
		return errInvalid("revoke family: zero time")
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	if _, ok := s.db.families[id]; !ok {
		return fmt.Errorf("memstore: revoke family: %w", session.ErrNotFound)
	}
	s.db.revokeLocked(id, at, reason)
	return nil
}

// FamilyTokens returns every stored refresh token of the family, ordered by
// generation; none for an unknown family.
func (s *Store) FamilyTokens(ctx context.Context, familyID string) ([]session.RefreshToken, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.Unlock()
	hashes := s.db.chains[familyID]
	out := make([]session.RefreshToken, 0, len(hashes))
	for _, h := range hashes {
		out = append(out, cloneToken(s.db.tokens[h]))
	}
	return out, nil
}

// LoadOrStoreSecret returns the secret stored under name, storing candidate
// first if there is none.
func (s *Store) LoadOrStoreSecret(ctx context.Context, name string, candidate []byte) ([]byte, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.Unlock()
	if v, ok := s.db.secrets[name]; ok {
		return bytes.Clone(v), nil
	}
	s.db.secrets[name] = bytes.Clone(candidate)
	return bytes.Clone(candidate), nil
}

// DeleteExpired removes families whose absolute expiry is before the given
// instant, with their tokens, and returns how many families it removed.
func (s *Store) DeleteExpired(ctx context.Context, before time.Time) (int64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.db.mu.Unlock()
	var n int64
	for id, f := range s.db.families {
		if !f.ExpiresAt.Before(before) {
			continue
		}
		for _, h := range s.db.chains[id] {
			delete(s.db.tokens, h)
		}
		delete(s.db.chains, id)
		delete(s.db.families, id)
		n++
	}
	return n, nil
}

// insertLocked stores t as the newest token of its family. db.mu is held.
func (d *db) insertLocked(t session.RefreshToken) {
	t = cloneToken(t)
	t.IssuedAt, t.ExpiresAt, t.ConsumedAt = utc(t.IssuedAt), utc(t.ExpiresAt), utc(t.ConsumedAt)
	d.tokens[string(t.Hash)] = t
	d.chains[t.FamilyID] = append(d.chains[t.FamilyID], string(t.Hash))
}

// revokeLocked revokes a family unless it is already revoked. db.mu is
// held.
func (d *db) revokeLocked(id string, at time.Time, reason string) {
	f := d.families[id]
	if f.Revoked() {
		return
	}
	f.RevokedAt, f.RevokeReason = utc(at), reason
	d.families[id] = f
}

// storedFamily is f as a store keeps it.
func storedFamily(f session.Family) session.Family {
	f.CreatedAt, f.ExpiresAt, f.RevokedAt = utc(f.CreatedAt), utc(f.ExpiresAt), utc(f.RevokedAt)
	return f
}

// cloneToken copies t's byte slices, so that callers cannot change the
// stored token through them.
func cloneToken(t session.RefreshToken) session.RefreshToken {
	t.Hash = bytes.Clone(t.Hash)
	t.SuccessorHash = bytes.Clone(t.SuccessorHash)
	return t
}
