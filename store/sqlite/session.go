package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/session"
)

// deleteBatch is how many families DeleteExpired removes per transaction,
// so that a large sweep never holds the write lock for long.
const deleteBatch = 500

func (s *Store) insertToken(ctx context.Context, tx *batchTx, familyID string, t session.RefreshToken) error {
	var succ any
	if t.SuccessorHash != nil {
		succ = t.SuccessorHash
	}
	_, err := tx.exec(ctx, qInsertToken,
		t.Hash, familyID, t.Generation, micros(t.IssuedAt), micros(t.ExpiresAt),
		micros(t.ConsumedAt), succ,
	)
	return err
}

// Exchange reads the chain of the token whose hash is given, calls decide
// and applies its Change, inside the write transaction of a batch (see
// batch.go): the transaction holds the database's write lock from its
// first read to its commit, so no other Exchange or revocation, in this
// process or another, runs in between, and the requests before it in the
// batch are already applied. It returns once the batch's commit is on disk.
// decide is called at most once, on the store's committing goroutine, and
// must not call the Store.
func (s *Store) Exchange(ctx context.Context, tokenHash []byte, decide func(session.Chain) (session.Change, error)) error {
	decideErr, err := s.queue(ctx, &writeReq{ctx: ctx, what: "exchange", exchange: true, op: func(ctx context.Context, tx *batchTx) (error, error) {
		return s.exchange(ctx, tx, tokenHash, decide)
	}})
	if decideErr != nil {
		return decideErr
	}
	return err
}

// exchange is one Exchange inside the batch's transaction.
func (s *Store) exchange(ctx context.Context, tx *batchTx, tokenHash []byte, decide func(session.Chain) (session.Change, error)) (decideErr, err error) {
	var c session.Chain
	if cached, ok := tx.chains.get(tokenHash); ok {
		c = cached
	} else if c, err = readChain(ctx, tx, tokenHash); err != nil {
		return nil, err
	}

	ch, err := decide(c)
	if err != nil {
		return err, nil
	}
	if ch.Consume != nil {
		if err := s.consume(ctx, tx, c, ch); err != nil {
			return nil, err
		}
		if !ch.Revoke {
			tx.chains.rotated(c, *ch.Consume)
		}
	}
	if ch.Revoke {
		tx.chains.clear()
		if ch.RevokeAt.IsZero() {
			return nil, errors.New("sqlite: exchange: revoke with zero RevokeAt")
		}
		if _, err := tx.exec(ctx, qRevoke,
			ch.RevokeReason, micros(ch.RevokeAt), c.Family.ID,
		); err != nil {
			return nil, wrap("exchange: revoke", err)
		}
	}
	return nil, nil
}

// readChain reads the chain of the token whose hash is given with the
// chain statement.
func readChain(ctx context.Context, tx *batchTx, tokenHash []byte) (session.Chain, error) {
	var (
		c                              session.Chain
		tIssued, tExp, tConsumed       sql.NullInt64
		fCreated, fExp, fRevoked       sql.NullInt64
		sHash, sSucc                   []byte
		sGen, sIssued, sExp, sConsumed sql.NullInt64
		tSucc                          []byte
		hasAttrs, live                 bool
		attrClaims, userClaims         sql.NullString
	)
	err := tx.queryRow(ctx, qChain, tokenHash).Scan(
		&c.Token.FamilyID, &c.Token.Generation, &tIssued, &tExp, &tConsumed, &tSucc,
		&c.Family.Subject, &c.Family.ClientID, &fCreated, &fExp, &fRevoked, &c.Family.RevokeReason, &c.Family.KeyThumbprint,
		&sHash, &sGen, &sIssued, &sExp, &sConsumed, &sSucc,
		&hasAttrs, &c.Attributes.Scope, &attrClaims, &live, &c.Attributes.ConfidentialClient, &userClaims,
	)
	if errors.Is(err, sql.ErrNoRows) {
		return session.Chain{}, fmt.Errorf("sqlite: exchange: %w", session.ErrNotFound)
	}
	if err != nil {
		return session.Chain{}, wrap("exchange: read", err)
	}
	c.Token.Hash = append([]byte(nil), tokenHash...)
	c.Token.IssuedAt, c.Token.ExpiresAt = fromMicros(tIssued), fromMicros(tExp)
	c.Token.ConsumedAt, c.Token.SuccessorHash = fromMicros(tConsumed), tSucc
	c.Family.ID = c.Token.FamilyID
	c.Family.CreatedAt, c.Family.ExpiresAt = fromMicros(fCreated), fromMicros(fExp)
	c.Family.RevokedAt = fromMicros(fRevoked)
	if c.Token.Consumed() && sHash != nil {
		c.Successor = &session.RefreshToken{
			Hash:          sHash,
			FamilyID:      c.Family.ID,
			Generation:    sGen.Int64,
			IssuedAt:      fromMicros(sIssued),
			ExpiresAt:     fromMicros(sExp),
			ConsumedAt:    fromMicros(sConsumed),
			SuccessorHash: sSucc,
		}
	}
	if err := chainClaims(&c, hasAttrs, live, attrClaims, userClaims); err != nil {
		return session.Chain{}, fmt.Errorf("sqlite: exchange: %w", err)
	}

	return c, nil
}

// chainClaims sets the attributes of c from the columns of qChain.
func chainClaims(c *session.Chain, hasAttrs, live bool, attrClaims, userClaims sql.NullString) error {
	if !hasAttrs {
		c.Attributes = session.DefaultAttributes
	} else {
		c.Attributes.LiveClaims = live
		cl, err := decodeClaims(attrClaims)
		if err != nil {
			return err
		}
		c.Attributes.Claims = cl
	}
	cl, err := decodeClaims(userClaims)
	c.SubjectClaims = cl
	return err
}

// decodeClaims decodes a claims column; NULL and the empty object are nil.
func decodeClaims(col sql.NullString) (claims.Set, error) {
	if !col.Valid || col.String == "{}" || col.String == "" {
		return nil, nil
	}
	return claims.Decode([]byte(col.String))
}

// consume applies the Consume half of a Change inside an Exchange.
func (s *Store) consume(ctx context.Context, tx *batchTx, c session.Chain, ch session.Change) error {
	next := *ch.Consume
	if ch.ConsumedAt.IsZero() {
		return errors.New("sqlite: exchange: consume with zero ConsumedAt")
	}
	if err := next.Check(); err != nil {
		return fmt.Errorf("sqlite: exchange: successor: %w", err)
	}
	res, err := tx.exec(ctx, qConsume,
		micros(ch.ConsumedAt), next.Hash, c.Token.Hash,
	)
	if err != nil {
		return wrap("exchange: consume", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("exchange: consume", err)
	} else if n != 1 {
		return errors.New("sqlite: exchange: consume of a token already consumed")
	}
	if err := s.insertToken(ctx, tx, c.Family.ID, next); err != nil {
		return wrap("exchange: insert successor", err)
	}
	return nil
}

// Family returns the family with the given ID, or an error wrapping
// session.ErrNotFound. While no connection of any process has committed
// since it last read the family, it answers from memory (familycache.go).
func (s *Store) Family(ctx context.Context, id string) (session.Family, error) {
	if err := ctx.Err(); err != nil {
		return session.Family{}, fmt.Errorf("sqlite: family: %w", context.Cause(ctx))
	}
	cached, hit, state, cacheable := s.families.get(id)
	if hit {
		return cached, nil
	}
	f := session.Family{ID: id}
	var created, exp, revoked sql.NullInt64
	// The lookup is one primary-key read on a read-only connection, which
	// in WAL mode waits for no lock: it runs without the caller's
	// cancellation, which would cost the driver a goroutine and a
	// progress handler per call (this is the per-request session check).
	err := s.rs.queryRow(context.WithoutCancel(ctx), nil, qFamily, id).Scan(&f.Subject, &f.ClientID, &created, &exp, &revoked, &f.RevokeReason, &f.KeyThumbprint)
	if errors.Is(err, sql.ErrNoRows) {
		return session.Family{}, fmt.Errorf("sqlite: family: %w", session.ErrNotFound)
	}
	if err != nil {
		return session.Family{}, wrap("family", err)
	}
	f.CreatedAt, f.ExpiresAt, f.RevokedAt = fromMicros(created), fromMicros(exp), fromMicros(revoked)
	if cacheable {
		s.families.put(state, f)
	}
	return f, nil
}

// RevokeFamily revokes the family with the given ID at the given instant.
// A family already revoked keeps its first revocation; an unknown ID
// returns an error wrapping session.ErrNotFound.
func (s *Store) RevokeFamily(ctx context.Context, id string, at time.Time, reason string) error {
	if at.IsZero() {
		return errors.New("sqlite: revoke family: zero time")
	}
	_, err := s.write(ctx, "revoke family", func(ctx context.Context, tx *batchTx) (error, error) {
		res, err := tx.exec(ctx, qRevoke, reason, micros(at), id)
		if err != nil {
			return nil, wrap("revoke family", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, wrap("revoke family", err)
		}
		if n == 0 {
			return nil, fmt.Errorf("sqlite: revoke family: %w", session.ErrNotFound)
		}
		return nil, nil
	})
	return err
}

// FamilyTokens returns every refresh token of the family, ordered by
// generation. An unknown family has no tokens.
func (s *Store) FamilyTokens(ctx context.Context, familyID string) ([]session.RefreshToken, error) {
	rows, err := s.rs.query(ctx, nil, qFamilyTokens, familyID)
	if err != nil {
		return nil, wrap("family tokens", err)
	}
	defer rows.Close()
	var out []session.RefreshToken
	for rows.Next() {
		t := session.RefreshToken{FamilyID: familyID}
		var issued, exp, consumed sql.NullInt64
		if err := rows.Scan(&t.Hash, &t.Generation, &issued, &exp, &consumed, &t.SuccessorHash); err != nil {
			return nil, wrap("family tokens: scan", err)
		}
		t.IssuedAt, t.ExpiresAt, t.ConsumedAt = fromMicros(issued), fromMicros(exp), fromMicros(consumed)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("family tokens", err)
	}
	return out, nil
}

// LoadOrStoreSecret returns the secret stored under name, storing candidate
// first if there is none. Every caller, in any process, gets the same bytes.
func (s *Store) LoadOrStoreSecret(ctx context.Context, name string, candidate []byte) ([]byte, error) {
	var v []byte
	err := s.rs.queryRow(ctx, nil, qSecret, name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, wrap("load secret", err)
	}
	if len(candidate) == 0 {
		return nil, errors.New("sqlite: store secret: empty candidate")
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, wrap("store secret: begin", err)
	}
	defer tx.Rollback()
	if _, err := s.ws.exec(ctx, tx, qInsertSecret,
		name, candidate, time.Now().UnixMicro(),
	); err != nil {
		return nil, wrap("store secret", err)
	}
	if err := s.ws.queryRow(ctx, tx, qSecret, name).Scan(&v); err != nil {
		return nil, wrap("store secret: read back", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, wrap("store secret: commit", err)
	}
	return v, nil
}

// DeleteExpired removes the families whose absolute expiry is before the
// given instant, with their tokens, in batches, and returns how many
// families it removed.
func (s *Store) DeleteExpired(ctx context.Context, before time.Time) (int64, error) {
	return s.deleteInBatches(ctx, "delete expired", qDeleteExpired, before)
}

// deleteInBatches runs the DELETE q, whose arguments are an instant and a
// row limit, one short transaction of at most deleteBatch rows at a time
// until one deletes fewer, and returns how many rows it deleted.
func (s *Store) deleteInBatches(ctx context.Context, what, q string, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.ws.exec(ctx, nil, q, before.UnixMicro(), deleteBatch)
		if err != nil {
			return total, wrap(what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, wrap(what, err)
		}
		total += n
		if n < deleteBatch {
			return total, nil
		}
	}
}
