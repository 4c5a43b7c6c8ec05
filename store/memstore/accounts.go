package memstore

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/user"
)

// UserByID returns the user with the given ID, or an error wrapping
// user.ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (user.User, error) {
	if err := s.lock(ctx); err != nil {
		return user.User{}, err
	}
	defer s.db.mu.Unlock()
	if u, ok := s.db.userByIDLocked(id); ok {
		return u, nil
	}
	return user.User{}, fmt.Errorf("memstore: user by id: %w", user.ErrNotFound)
}

// userByIDLocked finds a user by ID. db.mu is held.
func (d *db) userByIDLocked(id string) (user.User, bool) {
	if !d.userIDs[id] {
		return user.User{}, false
	}
	for _, u := range d.users {
		if u.ID == id {
			return u, true
		}
	}
	return user.User{}, false
}

// Users returns every user, ordered by username (byte order).
func (s *Store) Users(ctx context.Context) ([]user.User, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.Unlock()
	out := make([]user.User, 0, len(s.db.users))
	for _, u := range s.db.users {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out, nil
}

// UpdateUser applies c to the user under the lock of the data, and returns
// how many sessions it revoked.
func (s *Store) UpdateUser(ctx context.Context, id string, c store.UserChange) (int64, error) {
	if err := c.Check(); err != nil {
		return 0, fmt.Errorf("memstore: update user: %w", err)
	}
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.db.mu.Unlock()
	u, ok := s.db.userByIDLocked(id)
	if !ok {
		return 0, fmt.Errorf("memstore: update user: %w", user.ErrNotFound)
	}
	switch {
	case c.Delete:
		delete(s.db.users, u.Username)
		delete(s.db.userIDs, id)
	case c.Disable:
		u.DisabledAt = utc(c.At)
	case c.Enable:
		u.DisabledAt = time.Time{}
	}
	if c.PasswordHash != "" {
		u.PasswordHash = c.PasswordHash
	}
	if !c.Delete {
		s.db.users[u.Username] = u
	}
	if c.RevokeReason == "" {
		return 0, nil
	}
	return s.db.revokeSubjectLocked(id, c.At, c.RevokeReason), nil
}

// revokeSubjectLocked revokes every family of subject not revoked yet.
// db.mu is held.
func (d *db) revokeSubjectLocked(subject string, at time.Time, reason string) int64 {
	var n int64
	for id, f := range d.families {
		if f.Subject == subject && !f.Revoked() {
			d.revokeLocked(id, at, reason)
			n++
		}
	}
	return n
}

// CreateFamilyCapped stores a new family with its first token and revokes
// the least recently refreshed live families of its subject beyond max,
// under the lock of the data. The token's FamilyID is taken from f.
func (s *Store) CreateFamilyCapped(ctx context.Context, f session.Family, first session.RefreshToken, max int, reason string) ([]string, error) {
	if err := cmp.Or(f.Check(), first.Check()); err != nil {
		return nil, fmt.Errorf("memstore: create family: %w", err)
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.Unlock()
	if _, ok := s.db.families[f.ID]; ok {
		return nil, fmt.Errorf("memstore: create family %q: ID already exists", f.ID)
	}
	if _, ok := s.db.tokens[string(first.Hash)]; ok {
		return nil, fmt.Errorf("memstore: create family %q: first token already exists", f.ID)
	}
	s.db.families[f.ID] = storedFamily(f)
	first.FamilyID = f.ID
	s.db.insertLocked(first)
	if max <= 0 {
		return nil, nil
	}
	// Every other live family, most recently refreshed first: keep the
	// first max-1.
	var victims []string
	for _, in := range s.db.liveLocked(f.Subject, utc(f.CreatedAt)) {
		if in.ID != f.ID {
			victims = append(victims, in.ID)
		}
	}
	if len(victims) <= max-1 {
		return nil, nil
	}
	victims = victims[max-1:]
	for _, id := range victims {
		s.db.revokeLocked(id, f.CreatedAt, reason)
	}
	return victims, nil
}

// Sessions returns the live families of subject at now, most recently
// refreshed first.
func (s *Store) Sessions(ctx context.Context, subject string, now time.Time) ([]session.Info, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.Unlock()
	return s.db.liveLocked(subject, now), nil
}

// liveLocked lists the live families of subject at now, most recently
// refreshed first. db.mu is held.
func (d *db) liveLocked(subject string, now time.Time) []session.Info {
	var out []session.Info
	for id, f := range d.families {
		hashes := d.chains[id]
		if f.Subject != subject || f.Revoked() || !now.Before(f.ExpiresAt) || len(hashes) == 0 {
			continue
		}
		newest := d.tokens[hashes[len(hashes)-1]]
		if !now.Before(newest.ExpiresAt) {
			continue
		}
		out = append(out, session.Info{Family: f, LastRefreshedAt: newest.IssuedAt, IdleExpiresAt: newest.ExpiresAt})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		switch {
		case !a.LastRefreshedAt.Equal(b.LastRefreshedAt):
			return a.LastRefreshedAt.After(b.LastRefreshedAt)
		case !a.CreatedAt.Equal(b.CreatedAt):
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.ID > b.ID
	})
	return out
}

// RevokeSubject revokes every family of subject not revoked yet.
func (s *Store) RevokeSubject(ctx context.Context, subject string, at time.Time, reason string) (int64, error) {
	if at.IsZero() {
		return 0, errInvalid("revoke subject: zero time")
	}
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.db.mu.Unlock()
	return s.db.revokeSubjectLocked(subject, at, reason), nil
}

// DeleteSpentTokens removes consumed tokens whose idle expiry is before the
// given instant.
func (s *Store) DeleteSpentTokens(ctx context.Context, before time.Time) (int64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.db.mu.Unlock()
	var n int64
	for id, hashes := range s.db.chains {
		kept := hashes[:0]
		for _, h := range hashes {
			t := s.db.tokens[h]
			if t.Consumed() && t.ExpiresAt.Before(before) {
				delete(s.db.tokens, h)
				n++
				continue
			}
			kept = append(kept, h)
		}
		s.db.chains[id] = kept
	}
	return n, nil
}
