package postgres

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/user"
)

// The sessions of one subject and the operators' changes to a user run in
// transactions that first take a transaction-scoped advisory lock on the
// subject (subjectLockSQL): CreateFamilyCapped, RevokeSubject and
// UpdateUser of one subject queue on it, in every replica, so that
// concurrent logins cannot exceed the cap and a login cannot slip past a
// "revoke every session" that is committing. Families they revoke are
// locked in ID order, like those of an exchange batch, so they cannot
// deadlock with exchanges.
const (
	// subjectLockSQL takes the advisory lock of a subject: a 64-bit hash
	// of it, in a space of its own through the prefix.
	subjectLockSQL = `SELECT pg_advisory_xact_lock(hashtextextended('silentrefresh subject ' || $1, 0))`

	userColumns = `id, username, password_hash, created_at, disabled_at`

	// liveSessionsSQL lists the live families of a subject with their
	// newest token. Arguments: subject, now, a family ID to leave out (''
	// for none), how many of the most recently refreshed to skip.
	liveSessionsSQL = `
SELECT f.id, f.client_id, f.created_at, f.expires_at, t.issued_at, t.expires_at
FROM families f
JOIN refresh_tokens t ON t.family_id = f.id
	AND t.generation = (SELECT max(m.generation) FROM refresh_tokens m WHERE m.family_id = f.id)
WHERE f.subject = $1 AND f.revoked_at IS NULL AND f.expires_at > $2 AND t.expires_at > $2 AND f.id <> $3
ORDER BY t.issued_at DESC, f.created_at DESC, f.id DESC
OFFSET $4`

	// countLiveSQL counts the families of a subject that may be live (not
	// revoked, before their absolute expiry): an upper bound of the live
	// ones.
	countLiveSQL = `SELECT count(*) FROM families WHERE subject = $1 AND revoked_at IS NULL AND expires_at > $2`

	// revokeIDsSQL revokes the families with the given IDs, locking them
	// in ID order.
	revokeIDsSQL = `
UPDATE families SET revoked_at = $2, revoke_reason = $3
WHERE id IN (SELECT id FROM families WHERE id = ANY($1) AND revoked_at IS NULL ORDER BY id FOR NO KEY UPDATE)
	AND revoked_at IS NULL`

	// revokeSubjectSQL returns the IDs it revoked, for the cache.
	revokeSubjectSQL = `
UPDATE families SET revoked_at = $2, revoke_reason = $3
WHERE id IN (SELECT id FROM families WHERE subject = $1 AND revoked_at IS NULL ORDER BY id FOR NO KEY UPDATE)
	AND revoked_at IS NULL
RETURNING id`

	deleteSpentSQL = `
DELETE FROM refresh_tokens WHERE hash IN (
	SELECT hash FROM refresh_tokens WHERE consumed_at IS NOT NULL AND expires_at < $1 LIMIT $2
)`
)

func scanUser(row pgx.Row) (user.User, error) {
	var u user.User
	var disabled pgtype.Timestamptz
	err := row.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.CreatedAt, &disabled)
	u.CreatedAt, u.DisabledAt = u.CreatedAt.UTC(), fromNull(disabled)
	return u, err
}

// UserByID returns the user with the given ID, or user.ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (user.User, error) {
	var u user.User
	err := s.do(ctx, "user by id", true, func(ctx context.Context) error {
		var err error
		u, err = scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
		return err
	})
	if noRows(err) {
		return user.User{}, fmt.Errorf("postgres: user by id: %w", user.ErrNotFound)
	}
	return u, err
}

// Users returns every user, ordered by username.
func (s *Store) Users(ctx context.Context) ([]user.User, error) {
	var out []user.User
	err := s.do(ctx, "users", true, func(ctx context.Context) error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users ORDER BY username COLLATE "C"`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			u, err := scanUser(rows)
			if err != nil {
				return err
			}
			out = append(out, u)
		}
		return rows.Err()
	})
	return out, err
}

// inSubjectTx runs f in a transaction that holds the advisory lock of
// subject.
func (s *Store) inSubjectTx(ctx context.Context, what, subject string, f func(ctx context.Context, tx pgx.Tx) error) error {
	return s.do(ctx, what, false, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, subjectLockSQL, subject); err != nil {
				return err
			}
			return f(ctx, tx)
		})
	})
}

// UpdateUser applies c to the user in one transaction holding the lock of
// the user's subject, and returns how many sessions it revoked.
func (s *Store) UpdateUser(ctx context.Context, id string, c store.UserChange) (int64, error) {
	if err := c.Check(); err != nil {
		return 0, fmt.Errorf("postgres: update user: %w", err)
	}
	var (
		revoked int64
		touched []string // every family an attempt revoked
	)
	defer func() { s.forgetFamilies(touched...) }()
	err := s.inSubjectTx(ctx, "update user", id, func(ctx context.Context, tx pgx.Tx) error {
		revoked = 0
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, id).Scan(&one); err != nil {
			return err
		}
		var err error
		switch {
		case c.Delete:
			_, err = tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, id)
		case c.Disable:
			_, err = tx.Exec(ctx, `UPDATE users SET disabled_at = $2 WHERE id = $1`, id, c.At)
		case c.Enable:
			_, err = tx.Exec(ctx, `UPDATE users SET disabled_at = NULL WHERE id = $1`, id)
		}
		if err == nil && c.PasswordHash != "" {
			_, err = tx.Exec(ctx, `UPDATE users SET password_hash = $2 WHERE id = $1`, id, c.PasswordHash)
		}
		if err != nil {
			return err
		}
		if c.RevokeReason != "" {
			ids, err := revokeSubject(ctx, tx, id, c.At, c.RevokeReason)
			touched = append(touched, ids...)
			if err != nil {
				return err
			}
			revoked = int64(len(ids))
		}
		return nil
	})
	if noRows(err) {
		return 0, fmt.Errorf("postgres: update user: %w", user.ErrNotFound)
	}
	return revoked, err
}

// CreateFamilyCapped stores a new family with its first token and revokes
// the least recently refreshed live families of its subject beyond max, in
// one transaction holding the subject's lock.
func (s *Store) CreateFamilyCapped(ctx context.Context, f session.Family, first session.RefreshToken, max int, reason string) ([]string, error) {
	if err := cmp.Or(f.Check(), first.Check()); err != nil {
		return nil, fmt.Errorf("postgres: create family: %w", err)
	}
	var (
		victims []string
		touched []string // every family an attempt revoked
	)
	defer func() { s.forgetFamilies(touched...) }()
	err := s.inSubjectTx(ctx, "create family", f.Subject, func(ctx context.Context, tx pgx.Tx) error {
		victims = victims[:0]
		if _, err := tx.Exec(ctx, `
INSERT INTO families (id, subject, client_id, created_at, expires_at, revoked_at, revoke_reason, jkt)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			f.ID, f.Subject, f.ClientID, f.CreatedAt, f.ExpiresAt, nullTime(f.RevokedAt), f.RevokeReason, f.KeyThumbprint); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
INSERT INTO refresh_tokens (hash, family_id, generation, issued_at, expires_at, consumed_at, successor_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			first.Hash, f.ID, first.Generation, first.IssuedAt, first.ExpiresAt, nullTime(first.ConsumedAt), nullBytes(first.SuccessorHash)); err != nil {
			return err
		}
		if max <= 0 {
			return nil
		}
		// An upper bound of the live families, from the index alone:
		// while it is within the cap, nothing needs the full query.
		var n int
		if err := tx.QueryRow(ctx, countLiveSQL, f.Subject, f.CreatedAt).Scan(&n); err != nil {
			return err
		}
		if n <= max {
			return nil
		}
		infos, err := liveSessions(ctx, tx, f.Subject, f.CreatedAt, f.ID, max-1)
		if err != nil {
			return err
		}
		for _, in := range infos {
			victims = append(victims, in.ID)
		}
		if len(victims) == 0 {
			return nil
		}
		touched = append(touched, victims...)
		_, err = tx.Exec(ctx, revokeIDsSQL, victims, f.CreatedAt, reason)
		return err
	})
	if err != nil {
		return nil, err
	}
	return victims, nil
}

// Sessions returns the live families of subject at now, most recently
// refreshed first.
func (s *Store) Sessions(ctx context.Context, subject string, now time.Time) ([]session.Info, error) {
	var out []session.Info
	err := s.do(ctx, "sessions", true, func(ctx context.Context) error {
		var err error
		out, err = liveSessions(ctx, s.pool, subject, now, "", 0)
		return err
	})
	return out, err
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func liveSessions(ctx context.Context, q querier, subject string, now time.Time, except string, skip int) ([]session.Info, error) {
	rows, err := q.Query(ctx, liveSessionsSQL, subject, now, except, skip)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []session.Info
	for rows.Next() {
		in := session.Info{Family: session.Family{Subject: subject}}
		if err := rows.Scan(&in.ID, &in.ClientID, &in.CreatedAt, &in.ExpiresAt, &in.LastRefreshedAt, &in.IdleExpiresAt); err != nil {
			return nil, err
		}
		in.CreatedAt, in.ExpiresAt = in.CreatedAt.UTC(), in.ExpiresAt.UTC()
		in.LastRefreshedAt, in.IdleExpiresAt = in.LastRefreshedAt.UTC(), in.IdleExpiresAt.UTC()
		out = append(out, in)
	}
	return out, rows.Err()
}

// RevokeSubject revokes every family of subject not revoked yet, holding
// the subject's lock.
func (s *Store) RevokeSubject(ctx context.Context, subject string, at time.Time, reason string) (int64, error) {
	var (
		n       int64
		touched []string // every family an attempt revoked
	)
	defer func() { s.forgetFamilies(touched...) }()
	err := s.inSubjectTx(ctx, "revoke subject", subject, func(ctx context.Context, tx pgx.Tx) error {
		ids, err := revokeSubject(ctx, tx, subject, orNow(at), reason)
		touched = append(touched, ids...)
		n = int64(len(ids))
		return err
	})
	return n, err
}

// revokeSubject runs revokeSubjectSQL and returns the IDs it revoked.
func revokeSubject(ctx context.Context, tx pgx.Tx, subject string, at time.Time, reason string) ([]string, error) {
	rows, err := tx.Query(ctx, revokeSubjectSQL, subject, at, reason)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// DeleteSpentTokens removes consumed tokens past their idle expiry in
// chunks of deleteChunk, each its own statement. It takes no family lock:
// no exchange writes a consumed token.
func (s *Store) DeleteSpentTokens(ctx context.Context, before time.Time) (int64, error) {
	return s.deleteInChunks(ctx, "delete spent tokens", deleteSpentSQL, before, nil)
}
