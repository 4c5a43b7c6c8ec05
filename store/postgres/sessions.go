package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/session"
)

// Family returns the family with the given ID, or session.ErrNotFound.
// It answers from the family cache when it can (see cache.go).
func (s *Store) Family(ctx context.Context, id string) (session.Family, error) {
	var (
		g    uint64
		fill bool
	)
	if c := s.cache; c != nil && !s.closed.Load() {
		if f, ok := c.family(id); ok {
			return f, nil
		}
		g, fill = c.begin()
	}
	var f session.Family
	err := s.do(ctx, "family", true, func(ctx context.Context) error {
		row := s.pool.QueryRow(ctx, `SELECT `+familyColumns+` FROM families WHERE id = $1`, id)
		var err error
		f, err = scanFamily(row)
		return err
	})
	if noRows(err) {
		return session.Family{}, fmt.Errorf("postgres: family: %w", session.ErrNotFound)
	}
	if err != nil {
		return session.Family{}, err
	}
	if fill {
		if s.hooks.afterQuery != nil {
			s.hooks.afterQuery("f", id)
		}
		s.cache.families.fill(&s.cache.gen, g, id, f, s.hooks.beforeStore)
	}
	return f, nil
}

// RevokeFamily revokes the family, keeping an earlier revocation as it is.
// An unknown ID returns session.ErrNotFound.
func (s *Store) RevokeFamily(ctx context.Context, id string, at time.Time, reason string) error {
	// The UPDATE waits for an exchange holding the family lock and then
	// re-checks revoked_at, so the first revocation always stays.
	const q = `
WITH u AS (
	UPDATE families SET revoked_at = $2, revoke_reason = $3
	WHERE id = $1 AND revoked_at IS NULL
	RETURNING id
)
SELECT EXISTS (SELECT 1 FROM u) OR EXISTS (SELECT 1 FROM families WHERE id = $1)`
	var found bool
	err := s.do(ctx, "revoke family", true, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, q, id, orNow(at), reason).Scan(&found)
	})
	s.forgetFamilies(id)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("postgres: revoke family: %w", session.ErrNotFound)
	}
	return nil
}

// FamilyTokens returns every stored refresh token of the family, ordered by
// generation.
func (s *Store) FamilyTokens(ctx context.Context, familyID string) ([]session.RefreshToken, error) {
	const q = `
SELECT hash, family_id, generation, issued_at, expires_at, consumed_at, successor_hash
FROM refresh_tokens WHERE family_id = $1 ORDER BY generation, issued_at, hash`
	var out []session.RefreshToken
	err := s.do(ctx, "family tokens", true, func(ctx context.Context) error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, q, familyID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var t session.RefreshToken
			var consumed pgtype.Timestamptz
			if err := rows.Scan(&t.Hash, &t.FamilyID, &t.Generation, &t.IssuedAt, &t.ExpiresAt, &consumed, &t.SuccessorHash); err != nil {
				return err
			}
			t.IssuedAt, t.ExpiresAt, t.ConsumedAt = t.IssuedAt.UTC(), t.ExpiresAt.UTC(), fromNull(consumed)
			out = append(out, t)
		}
		return rows.Err()
	})
	return out, err
}

// LoadOrStoreSecret returns the secret stored under name, storing candidate
// first if there is none. Concurrent callers all get the same secret.
func (s *Store) LoadOrStoreSecret(ctx context.Context, name string, candidate []byte) ([]byte, error) {
	var secret []byte
	err := s.do(ctx, "load or store secret", true, func(ctx context.Context) error {
		// Two statements, each with its own snapshot: after the INSERT
		// (which waits for a concurrent inserter of the same name), the
		// SELECT sees whichever row won.
		if _, err := s.pool.Exec(ctx,
			`INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
			name, candidate); err != nil {
			return err
		}
		return s.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&secret)
	})
	return secret, err
}

// DeleteExpired removes the families whose absolute expiry is before the
// given instant, with their tokens, and returns how many it removed. It
// deletes in chunks of deleteChunk families, each locked in ID order like
// the families of an exchange batch, so that it never holds many locks for
// long nor deadlocks with exchanges.
func (s *Store) DeleteExpired(ctx context.Context, before time.Time) (int64, error) {
	const q = `
DELETE FROM families WHERE id IN (
	SELECT id FROM families WHERE expires_at < $1 ORDER BY id LIMIT $2 FOR UPDATE
)
RETURNING id`
	return s.deleteInChunks(ctx, "delete expired", q, before, s.forgetFamilies)
}

// deleteChunk is how many rows one statement of deleteInChunks removes.
const deleteChunk = 1000

// deleteInChunks runs q, a DELETE of at most $2 rows older than $1, until
// a statement removes fewer than deleteChunk, and returns how many rows it
// removed in all. If deleted is not nil, q returns the IDs it deleted
// (RETURNING id) and deleted is called with them.
func (s *Store) deleteInChunks(ctx context.Context, what, q string, before time.Time, deleted func(ids ...string)) (int64, error) {
	var total int64
	for {
		var (
			n   int64
			ids []string
		)
		err := s.do(ctx, what, true, func(ctx context.Context) error {
			if deleted != nil {
				rows, err := s.pool.Query(ctx, q, before, deleteChunk)
				if err != nil {
					return err
				}
				ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
				n = int64(len(ids))
				return err
			}
			tag, err := s.pool.Exec(ctx, q, before, deleteChunk)
			n = tag.RowsAffected()
			return err
		})
		if deleted != nil {
			deleted(ids...)
		}
		total += n
		if err != nil || n < deleteChunk {
			return total, err
		}
	}
}

// Exchange reads the chain of the token, calls decide and applies its
// Change in one transaction that holds the family row lock.
//
// Calls are queued and run in batches when several are waiting (see
// batch.go). A batch of one takes two round trips — (1, pipelined) BEGIN;
// lock the family row with SELECT … FOR NO KEY UPDATE, which conflicts with
// every other exchange and revocation of the family and not with
// foreign-key checks; read the token and its successor, in a new statement
// that at READ COMMITTED sees everything committed by the transaction that
// held the lock before — and (2) the writes and COMMIT. decide's error is
// returned unchanged.
func (s *Store) Exchange(ctx context.Context, tokenHash []byte, decide func(session.Chain) (session.Change, error)) error {
	return s.enqueue(ctx, tokenHash, decide)
}

const familyColumns = `id, subject, client_id, created_at, expires_at, revoked_at, revoke_reason, jkt`

const (
	// lockedFamilyColumns are a family locked for an exchange, with its
	// attributes and, for live claims, its subject's user claims, from
	// lockedFamilyTables; scanLockedFamily reads them.
	lockedFamilyColumns = `f.id, f.subject, f.client_id, f.created_at, f.expires_at, f.revoked_at, f.revoke_reason, f.jkt,
	a.family_id IS NOT NULL, COALESCE(a.scope, ''), a.claims::text, COALESCE(a.live_claims, true),
	COALESCE(a.confidential, false), u.claims::text`
	lockedFamilyTables = `families f
LEFT JOIN family_attributes a ON a.family_id = f.id
LEFT JOIN user_claims u ON u.user_id = f.subject AND COALESCE(a.live_claims, true)`

	lockFamilySQL = `SELECT ` + lockedFamilyColumns + ` FROM ` + lockedFamilyTables + `
WHERE f.id = (SELECT family_id FROM refresh_tokens WHERE hash = $1)
FOR NO KEY UPDATE OF f`

	readChainSQL = `
SELECT t.family_id, t.generation, t.issued_at, t.expires_at, t.consumed_at, t.successor_hash,
	s.hash, s.generation, s.issued_at, s.expires_at, s.consumed_at, s.successor_hash
FROM refresh_tokens t LEFT JOIN refresh_tokens s ON s.hash = t.successor_hash
WHERE t.hash = $1`

	// consumeSQL marks the token consumed and inserts its successor in one
	// statement; the guard on consumed_at makes it insert nothing if the
	// token were somehow consumed already.
	consumeSQL = `
WITH u AS (
	UPDATE refresh_tokens SET consumed_at = $2, successor_hash = $3
	WHERE hash = $1 AND consumed_at IS NULL
	RETURNING family_id
)
INSERT INTO refresh_tokens (hash, family_id, generation, issued_at, expires_at)
SELECT $3, u.family_id, $4, $5, $6 FROM u`

	revokeSQL = `UPDATE families SET revoked_at = $2, revoke_reason = $3 WHERE id = $1 AND revoked_at IS NULL`
)

// errConcurrentConsume is returned if the consume statement found the
// token already consumed although the family was locked. It cannot happen
// unless something writes the table without taking the family lock.
var errConcurrentConsume = errors.New("token consumed outside the family lock")

// readPhaseError marks a connection failure during the read round trip,
// before anything was written: the exchange can safely be retried.
type readPhaseError struct{ error }

func (e readPhaseError) Unwrap() error     { return e.error }
func (e readPhaseError) SafeToRetry() bool { return true }

// exchange is one attempt of Exchange. It returns decide's error separately
// from its own.
func (s *Store) exchange(ctx context.Context, tokenHash []byte, decide func(session.Chain) (session.Change, error)) (decideErr, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, readPhaseError{err}
	}
	// Release destroys the connection if it is still inside a transaction
	// (an error between BEGIN and COMMIT), so no lock outlives the call.
	defer conn.Release()

	chain, found, err := readChain(ctx, conn.Conn(), tokenHash)
	if err != nil {
		return nil, readPhaseError{err}
	}
	if !found {
		return nil, errors.Join(fmt.Errorf("postgres: exchange: %w", session.ErrNotFound), rollback(ctx, conn.Conn()))
	}

	change, derr := decide(chain)
	if derr != nil {
		// Nothing to undo: the transaction only read. A failed rollback
		// leaves the connection in a transaction and Release drops it.
		_ = rollback(ctx, conn.Conn())
		return derr, nil
	}
	err = apply(ctx, conn.Conn(), chain, change)
	if change.Revoke {
		s.forgetFamilies(chain.Family.ID)
	}
	return nil, err
}

// readChain begins the transaction, locks the family and reads the chain.
// found is false (with the transaction still open) for an unknown token.
func readChain(ctx context.Context, conn *pgx.Conn, tokenHash []byte) (chain session.Chain, found bool, err error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	b.Queue(lockFamilySQL, tokenHash)
	b.Queue(readChainSQL, tokenHash)
	br := conn.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := br.Exec(); err != nil {
		return chain, false, err
	}
	lf, err := scanLockedFamily(br.QueryRow())
	chain.Family, chain.Attributes, chain.SubjectClaims = lf.fam, lf.attrs, lf.subjectClaims
	if noRows(err) {
		// Unknown token (or its family just deleted). The chain query
		// finds nothing either; drain it.
		_, err = br.Exec()
		return chain, false, err
	}
	if err != nil {
		return chain, false, err
	}

	var (
		t                   = &chain.Token
		tConsumed           pgtype.Timestamptz
		sHash, sSucc        []byte
		sGen                pgtype.Int8
		sIssued, sExp, sCon pgtype.Timestamptz
	)
	err = br.QueryRow().Scan(&t.FamilyID, &t.Generation, &t.IssuedAt, &t.ExpiresAt, &tConsumed, &t.SuccessorHash,
		&sHash, &sGen, &sIssued, &sExp, &sCon, &sSucc)
	if noRows(err) {
		return chain, false, nil
	}
	if err != nil {
		return chain, false, err
	}
	t.Hash = tokenHash
	t.IssuedAt, t.ExpiresAt, t.ConsumedAt = t.IssuedAt.UTC(), t.ExpiresAt.UTC(), fromNull(tConsumed)
	if sHash != nil {
		chain.Successor = &session.RefreshToken{
			Hash:          sHash,
			FamilyID:      t.FamilyID,
			Generation:    sGen.Int64,
			IssuedAt:      fromNull(sIssued),
			ExpiresAt:     fromNull(sExp),
			ConsumedAt:    fromNull(sCon),
			SuccessorHash: sSucc,
		}
	}
	return chain, true, nil
}

// apply writes the Change and commits, in one round trip.
func apply(ctx context.Context, conn *pgx.Conn, chain session.Chain, c session.Change) (err error) {
	b := &pgx.Batch{}
	if c.Consume != nil {
		at := c.ConsumedAt
		if at.IsZero() {
			at = orNow(c.Consume.IssuedAt)
		}
		b.Queue(consumeSQL, chain.Token.Hash, at, c.Consume.Hash,
			c.Consume.Generation, c.Consume.IssuedAt, c.Consume.ExpiresAt)
	}
	if c.Revoke {
		b.Queue(revokeSQL, chain.Family.ID, orNow(c.RevokeAt), c.RevokeReason)
	}
	b.Queue("COMMIT")
	br := conn.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	if c.Consume != nil {
		tag, err := br.Exec()
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			err = errConcurrentConsume
			_, _ = br.Exec() // the COMMIT of a transaction that wrote nothing of the consume
			return err
		}
	}
	if c.Revoke {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	_, err = br.Exec()
	return err
}

// rollback ends the open transaction.
func rollback(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, "ROLLBACK")
	return err
}

// scanFamily scans the familyColumns of one row.
func scanFamily(row pgx.Row) (session.Family, error) {
	var f session.Family
	var revoked pgtype.Timestamptz
	err := row.Scan(&f.ID, &f.Subject, &f.ClientID, &f.CreatedAt, &f.ExpiresAt, &revoked, &f.RevokeReason, &f.KeyThumbprint)
	f.CreatedAt, f.ExpiresAt, f.RevokedAt = f.CreatedAt.UTC(), f.ExpiresAt.UTC(), fromNull(revoked)
	return f, err
}

// lockedFamily is a family as an exchange reads it.
type lockedFamily struct {
	fam           session.Family
	attrs         session.Attributes
	subjectClaims claims.Set
}

// scanLockedFamily scans the lockedFamilyColumns of one row.
func scanLockedFamily(row pgx.Row) (lockedFamily, error) {
	var (
		lf                     lockedFamily
		f                      = &lf.fam
		revoked                pgtype.Timestamptz
		hasAttrs, live         bool
		attrClaims, userClaims *string
	)
	err := row.Scan(&f.ID, &f.Subject, &f.ClientID, &f.CreatedAt, &f.ExpiresAt, &revoked, &f.RevokeReason, &f.KeyThumbprint,
		&hasAttrs, &lf.attrs.Scope, &attrClaims, &live, &lf.attrs.ConfidentialClient, &userClaims)
	if err != nil {
		return lockedFamily{}, err
	}
	f.CreatedAt, f.ExpiresAt, f.RevokedAt = f.CreatedAt.UTC(), f.ExpiresAt.UTC(), fromNull(revoked)
	if !hasAttrs {
		lf.attrs = session.DefaultAttributes
	} else {
		lf.attrs.LiveClaims = live
		if lf.attrs.Claims, err = decodeClaims(attrClaims); err != nil {
			return lockedFamily{}, fmt.Errorf("family %s: attributes: %w", f.ID, err)
		}
	}
	if lf.subjectClaims, err = decodeClaims(userClaims); err != nil {
		return lockedFamily{}, fmt.Errorf("family %s: user claims: %w", f.ID, err)
	}
	return lf, nil
}

// decodeClaims decodes a claims column; NULL and the empty object are nil.
func decodeClaims(col *string) (claims.Set, error) {
	if col == nil || *col == "{}" || *col == "" {
		return nil, nil
	}
	return claims.Decode([]byte(*col))
}

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// nullBytes stores an empty slice as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// fromNull reads NULL as the zero time, and any other time in UTC.
func fromNull(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// orNow returns t, or the current time if t is zero.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}
