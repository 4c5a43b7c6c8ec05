package memstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/silentrefresh/silentrefresh/assertion"
	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/registry"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/user"
)

// moreData are the tables of migration 00004 of the SQL stores.
type moreData struct {
	attrs      map[string]session.Attributes // by family ID
	userClaims map[string][]byte             // by user ID, JSON as the SQL stores keep it
	jtis       map[[2]string]time.Time       // (issuer, jti) → expiry
	clients    map[string]registry.Client
}

// moreLocked returns the extra tables, creating them on first use. db.mu
// is held.
func (d *db) moreLocked() *moreData {
	if d.more == nil {
		d.more = &moreData{
			attrs:      map[string]session.Attributes{},
			userClaims: map[string][]byte{},
			jtis:       map[[2]string]time.Time{},
			clients:    map[string]registry.Client{},
		}
	}
	return d.more
}

// roundTrip is c as a JSON column gives it back.
func roundTrip(c claims.Set) (claims.Set, error) {
	b, err := claims.Encode(c)
	if err != nil {
		return nil, err
	}
	return claims.Decode(b)
}

// PutAttributes stores the scope and claims of a family. An unknown family
// returns an error wrapping session.ErrNotFound.
func (s *Store) PutAttributes(ctx context.Context, familyID string, a session.Attributes) error {
	c, err := roundTrip(a.Claims)
	if err != nil {
		return fmt.Errorf("memstore: put attributes: %w", err)
	}
	a.Claims = c
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	if _, ok := s.db.families[familyID]; !ok {
		return fmt.Errorf("memstore: put attributes: %w", session.ErrNotFound)
	}
	m := s.db.moreLocked()
	// Attributes of families deleted since go with them, as ON DELETE
	// CASCADE does.
	for id := range m.attrs {
		if _, ok := s.db.families[id]; !ok {
			delete(m.attrs, id)
		}
	}
	m.attrs[familyID] = a
	return nil
}

// LookupToken reads a refresh token, its family, the family's attributes
// and its subject's user claims.
func (s *Store) LookupToken(ctx context.Context, tokenHash []byte) (session.TokenInfo, error) {
	if err := s.lock(ctx); err != nil {
		return session.TokenInfo{}, err
	}
	defer s.db.mu.Unlock()
	t, ok := s.db.tokens[string(tokenHash)]
	if !ok {
		return session.TokenInfo{}, fmt.Errorf("memstore: lookup token: %w", session.ErrNotFound)
	}
	in := session.TokenInfo{Token: cloneToken(t), Family: s.db.families[t.FamilyID], Attributes: session.DefaultAttributes}
	m := s.db.moreLocked()
	if a, ok := m.attrs[t.FamilyID]; ok {
		in.Attributes = a
		in.Attributes.Claims = maps.Clone(a.Claims)
	}
	if b, ok := m.userClaims[in.Family.Subject]; ok {
		c, err := claims.Decode(b)
		if err != nil {
			return session.TokenInfo{}, fmt.Errorf("memstore: lookup token: %w", err)
		}
		in.SubjectClaims = c
	}
	return in, nil
}

// chainAttributesLocked sets the attributes of c's family and, for
// LiveClaims, its subject's user claims. db.mu is held.
func (d *db) chainAttributesLocked(c *session.Chain) error {
	c.Attributes = session.DefaultAttributes
	m := d.moreLocked()
	if a, ok := m.attrs[c.Family.ID]; ok {
		c.Attributes = a
		c.Attributes.Claims = maps.Clone(a.Claims)
	}
	if !c.Attributes.LiveClaims {
		return nil
	}
	if b, ok := m.userClaims[c.Family.Subject]; ok {
		cl, err := claims.Decode(b)
		if err != nil {
			return err
		}
		c.SubjectClaims = cl
	}
	return nil
}

// SetUserClaims replaces the claims of a user; an empty set removes them.
func (s *Store) SetUserClaims(ctx context.Context, userID string, c claims.Set, _ time.Time) error {
	b, err := claims.Encode(c)
	if err != nil {
		return fmt.Errorf("memstore: set user claims: %w", err)
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	if !s.db.userIDs[userID] {
		return fmt.Errorf("memstore: set user claims: %w", user.ErrNotFound)
	}
	if len(c) == 0 {
		delete(s.db.moreLocked().userClaims, userID)
	} else {
		s.db.moreLocked().userClaims[userID] = b
	}
	return nil
}

// UserClaims returns the claims of a user, nil for none.
func (s *Store) UserClaims(ctx context.Context, userID string) (claims.Set, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.Unlock()
	b, ok := s.db.moreLocked().userClaims[userID]
	if !ok {
		return nil, nil
	}
	return claims.Decode(b)
}

// UseJTI records the jti of an accepted assertion; one seen before and not
// yet expired returns an error wrapping assertion.ErrReplayed.
func (s *Store) UseJTI(ctx context.Context, issuer, jti string, expiresAt, now time.Time) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	m := s.db.moreLocked()
	for k, exp := range m.jtis {
		if exp.Before(now) {
			delete(m.jtis, k)
		}
	}
	k := [2]string{issuer, jti}
	if _, ok := m.jtis[k]; ok {
		return fmt.Errorf("memstore: use jti: %w", assertion.ErrReplayed)
	}
	m.jtis[k] = expiresAt
	return nil
}

// AddClient registers a client; a taken ID returns registry.ErrExists.
func (s *Store) AddClient(ctx context.Context, c registry.Client) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	m := s.db.moreLocked()
	if _, ok := m.clients[c.ID]; ok {
		return fmt.Errorf("memstore: add client %q: %w", c.ID, registry.ErrExists)
	}
	c.CreatedAt = utc(c.CreatedAt)
	c.Scopes = slices.Clone(c.Scopes)
	m.clients[c.ID] = c
	return nil
}

// Client returns the client with the given ID, or registry.ErrNotFound.
func (s *Store) Client(ctx context.Context, id string) (registry.Client, error) {
	if err := s.lock(ctx); err != nil {
		return registry.Client{}, err
	}
	defer s.db.mu.Unlock()
	c, ok := s.db.moreLocked().clients[id]
	if !ok {
		return registry.Client{}, fmt.Errorf("memstore: client: %w", registry.ErrNotFound)
	}
	c.Scopes = slices.Clone(c.Scopes)
	return c, nil
}

// Clients returns every registered client, ordered by ID.
func (s *Store) Clients(ctx context.Context) ([]registry.Client, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.Unlock()
	m := s.db.moreLocked()
	var out []registry.Client
	for _, id := range slices.Sorted(maps.Keys(m.clients)) {
		c := m.clients[id]
		c.Scopes = slices.Clone(c.Scopes)
		out = append(out, c)
	}
	return out, nil
}

// RemoveClient deletes a client; an unknown ID returns registry.ErrNotFound.
func (s *Store) RemoveClient(ctx context.Context, id string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	m := s.db.moreLocked()
	if _, ok := m.clients[id]; !ok {
		return fmt.Errorf("memstore: remove client %q: %w", id, registry.ErrNotFound)
	}
	delete(m.clients, id)
	return nil
}
