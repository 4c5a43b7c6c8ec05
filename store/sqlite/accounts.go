package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/user"
)

// The SQL of users' sessions and of the operators' changes. SQLite
// serialises every write transaction, which is all the serialisation
// CreateFamilyCapped, RevokeSubject and UpdateUser need.
const (
	qUserByID = `SELECT id, username, password_hash, created_at, disabled_at FROM users WHERE id = ?`
	qUsers    = `SELECT id, username, password_hash, created_at, disabled_at FROM users ORDER BY username`

	// qLiveSessions lists the live families of a subject with their newest
	// token (found through the UNIQUE (family_id, generation) index).
	// Arguments: subject, now, now, the ID of a family to leave out ('' for
	// none), and how many of the most recently refreshed to skip.
	qLiveSessions = `
		SELECT f.id, f.client_id, f.created_at, f.expires_at, t.issued_at, t.expires_at
		FROM families f
		JOIN refresh_tokens t ON t.family_id = f.id
			AND t.generation = (SELECT max(m.generation) FROM refresh_tokens m WHERE m.family_id = f.id)
		WHERE f.subject = ? AND f.revoked_at IS NULL AND f.expires_at > ? AND t.expires_at > ? AND f.id <> ?
		ORDER BY t.issued_at DESC, f.created_at DESC, f.id DESC
		LIMIT -1 OFFSET ?`

	// qCountLive counts the families of a subject that may be live (not
	// revoked, before their absolute expiry) from the index alone: an
	// upper bound of the live ones, which spares the cap the full query
	// while a user is well under it.
	qCountLive = `SELECT count(*) FROM families WHERE subject = ? AND revoked_at IS NULL AND expires_at > ?`

	qRevokeLive = `UPDATE families SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL`

	qRevokeSubject = `UPDATE families SET revoked_at = ?, revoke_reason = ? WHERE subject = ? AND revoked_at IS NULL`

	qUserExists    = `SELECT 1 FROM users WHERE id = ?`
	qDeleteUser    = `DELETE FROM users WHERE id = ?`
	qSetDisabledAt = `UPDATE users SET disabled_at = ? WHERE id = ?`
	qSetPassword   = `UPDATE users SET password_hash = ? WHERE id = ?`

	// qDeleteSpent deletes one batch of consumed tokens past their idle
	// expiry, found through the partial index refresh_tokens_spent.
	qDeleteSpent = `
		DELETE FROM refresh_tokens WHERE hash IN (
			SELECT hash FROM refresh_tokens WHERE consumed_at IS NOT NULL AND expires_at < ? LIMIT ?)`
)

// UserByID returns the user with the given ID, or an error wrapping
// user.ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (user.User, error) {
	u, err := scanUser(s.rs.queryRow(ctx, nil, qUserByID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return user.User{}, fmt.Errorf("sqlite: user by id: %w", user.ErrNotFound)
	}
	if err != nil {
		return user.User{}, wrap("user by id", err)
	}
	return u, nil
}

// Users returns every user, ordered by username.
func (s *Store) Users(ctx context.Context) ([]user.User, error) {
	rows, err := s.rs.query(ctx, nil, qUsers)
	if err != nil {
		return nil, wrap("users", err)
	}
	defer rows.Close()
	var out []user.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, wrap("users: scan", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("users", err)
	}
	return out, nil
}

func scanUser(r interface{ Scan(...any) error }) (user.User, error) {
	var (
		u                 user.User
		created, disabled sql.NullInt64
	)
	if err := r.Scan(&u.ID, &u.Username, &u.PasswordHash, &created, &disabled); err != nil {
		return user.User{}, err
	}
	u.CreatedAt, u.DisabledAt = fromMicros(created), fromMicros(disabled)
	return u, nil
}

// UpdateUser applies c to the user in one IMMEDIATE transaction and
// returns how many sessions it revoked.
func (s *Store) UpdateUser(ctx context.Context, id string, c store.UserChange) (int64, error) {
	if err := c.Check(); err != nil {
		return 0, fmt.Errorf("sqlite: update user: %w", err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, wrap("update user: begin", err)
	}
	defer tx.Rollback()
	var one int
	err = s.ws.queryRow(ctx, tx, qUserExists, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("sqlite: update user: %w", user.ErrNotFound)
	}
	if err != nil {
		return 0, wrap("update user: read", err)
	}
	exec := func(q string, args ...any) error {
		_, err := s.ws.exec(ctx, tx, q, args...)
		return err
	}
	switch {
	case c.Delete:
		err = exec(qDeleteUser, id)
	case c.Disable:
		err = exec(qSetDisabledAt, micros(c.At), id)
	case c.Enable:
		err = exec(qSetDisabledAt, nil, id)
	}
	if err == nil && c.PasswordHash != "" {
		err = exec(qSetPassword, c.PasswordHash, id)
	}
	if err != nil {
		return 0, wrap("update user", err)
	}
	var revoked int64
	if c.RevokeReason != "" {
		res, err := s.ws.exec(ctx, tx, qRevokeSubject, micros(c.At), c.RevokeReason, id)
		if err != nil {
			return 0, wrap("update user: revoke sessions", err)
		}
		if revoked, err = res.RowsAffected(); err != nil {
			return 0, wrap("update user: revoke sessions", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, wrap("update user: commit", err)
	}
	return revoked, nil
}

// CreateFamilyCapped stores a new family with its first token and revokes
// the least recently refreshed live families of its subject beyond max,
// inside the write transaction of a batch (batch.go), which holds the
// write lock from the insert to the commit. The token's FamilyID is taken
// from f.
func (s *Store) CreateFamilyCapped(ctx context.Context, f session.Family, first session.RefreshToken, max int, reason string) ([]string, error) {
	if err := cmp.Or(f.Check(), first.Check()); err != nil {
		return nil, fmt.Errorf("sqlite: create family: %w", err)
	}
	var victims []string
	_, err := s.write(ctx, "create family", func(ctx context.Context, tx *batchTx) (error, error) {
		victims = nil
		if _, err := tx.exec(ctx, qInsertFamily,
			f.ID, f.Subject, f.ClientID, micros(f.CreatedAt), micros(f.ExpiresAt),
			micros(f.RevokedAt), f.RevokeReason, f.KeyThumbprint,
		); err != nil {
			return nil, wrap("create family", err)
		}
		if err := s.insertToken(ctx, tx, f.ID, first); err != nil {
			return nil, wrap("create family: first token", err)
		}
		if max <= 0 {
			return nil, nil
		}
		now := f.CreatedAt.UnixMicro()
		var n int
		if err := tx.queryRow(ctx, qCountLive, f.Subject, now).Scan(&n); err != nil {
			return nil, wrap("create family: count sessions", err)
		}
		if n <= max {
			return nil, nil
		}
		infos, err := s.liveSessions(ctx, tx.tx, f.Subject, now, f.ID, max-1)
		if err != nil {
			return nil, wrap("create family: sessions over the cap", err)
		}
		for _, in := range infos {
			if _, err := tx.exec(ctx, qRevokeLive, micros(f.CreatedAt), reason, in.ID); err != nil {
				return nil, wrap("create family: revoke over the cap", err)
			}
			victims = append(victims, in.ID)
		}
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	return victims, nil
}

// Sessions returns the live families of subject at now, most recently
// refreshed first.
func (s *Store) Sessions(ctx context.Context, subject string, now time.Time) ([]session.Info, error) {
	out, err := s.liveSessions(ctx, nil, subject, now.UnixMicro(), "", 0)
	if err != nil {
		return nil, wrap("sessions", err)
	}
	return out, nil
}

// liveSessions runs qLiveSessions on the readers, or in tx if not nil.
func (s *Store) liveSessions(ctx context.Context, tx *sql.Tx, subject string, now int64, except string, skip int) ([]session.Info, error) {
	st := s.rs
	if tx != nil {
		st = s.ws
	}
	rows, err := st.query(ctx, tx, qLiveSessions, subject, now, now, except, skip)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []session.Info
	for rows.Next() {
		in := session.Info{Family: session.Family{Subject: subject}}
		var created, exp, issued, idle sql.NullInt64
		if err := rows.Scan(&in.ID, &in.ClientID, &created, &exp, &issued, &idle); err != nil {
			return nil, err
		}
		in.CreatedAt, in.ExpiresAt = fromMicros(created), fromMicros(exp)
		in.LastRefreshedAt, in.IdleExpiresAt = fromMicros(issued), fromMicros(idle)
		out = append(out, in)
	}
	return out, rows.Err()
}

// RevokeSubject revokes every family of subject not revoked yet.
func (s *Store) RevokeSubject(ctx context.Context, subject string, at time.Time, reason string) (int64, error) {
	if at.IsZero() {
		return 0, errors.New("sqlite: revoke subject: zero time")
	}
	res, err := s.ws.exec(ctx, nil, qRevokeSubject, micros(at), reason, subject)
	if err != nil {
		return 0, wrap("revoke subject", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, wrap("revoke subject", err)
	}
	return n, nil
}

// DeleteSpentTokens removes consumed tokens past their idle expiry, in
// batches of deleteBatch, each its own short transaction.
func (s *Store) DeleteSpentTokens(ctx context.Context, before time.Time) (int64, error) {
	return s.deleteInBatches(ctx, "delete spent tokens", qDeleteSpent, before)
}
