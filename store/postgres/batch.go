package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
)

// Exchanges are combined: every call queues a request, and a worker takes
// whatever is queued (up to maxBatch requests) and runs it as one
// transaction — lock every family involved, read every chain, call each
// decide in queue order, write all changes, commit once. Under load this
// turns many small durable transactions into a few larger ones: one WAL
// flush and a handful of statements for a whole batch instead of for each
// refresh. With nothing else queued a batch holds one request and takes the
// single-exchange path, so an idle server answers as fast as before.
//
// Normally one batch runs at a time per Store, and the next one collects
// everything that queued meanwhile: on a busy machine that makes batches
// large and the CPU cost per exchange small (measured on 2 cores with 64
// concurrent sessions: 32 exchanges per batch with one batch at a time
// against 17 with two, and about a fifth less CPU per refresh). If a batch
// takes longer than stallAfter (waiting for a family locked by another
// replica, say), the next one starts anyway, up to batchers at once, so one
// slow batch does not hold up the rest.
//
// Every exchange still runs inside one READ COMMITTED transaction that
// holds its family's row lock, so the Store contract is unchanged. Within a
// batch, requests for the same family see the effects of the earlier ones
// (the batch keeps the chains it read up to date in memory as it applies
// each decision), exactly as if they had run one after the other. Families
// are locked in ID order, so batches running at the same time, in this
// process or in other replicas, cannot deadlock one another.
//
// If a batch fails for a reason other than a lost connection (a constraint
// violated by one request's change, say), each of its requests is run again
// on its own, so one bad request cannot fail the others. decide may be
// called again then, which the Store contract allows.
const (
	// maxBatch bounds the requests of one batch.
	maxBatch = 64
	// batchers is how many batches may run at once when batches stall
	// (each holds one connection).
	batchers = 4
	// stallAfter is how long a batch runs before the next may start.
	stallAfter = 50 * time.Millisecond
)

// exchangeReq is one queued Exchange.
type exchangeReq struct {
	ctx    context.Context
	hash   []byte
	decide func(session.Chain) (session.Change, error)
	done   chan exchangeRes // buffered, written once
}

type exchangeRes struct {
	decideErr error // returned unchanged
	err       error // already wrapped
}

func (r *exchangeReq) finish(res exchangeRes) { r.done <- res }

// startBatchers starts the workers that run queued exchanges.
func (s *Store) startBatchers() {
	s.reqs = make(chan *exchangeReq, 4*maxBatch)
	s.quit = make(chan struct{})
	s.turn = make(chan struct{}, 1)
	s.turn <- struct{}{}
	for range batchers {
		s.workers.Go(s.batcher)
	}
}

// stopBatchers stops the workers and fails what is still queued.
func (s *Store) stopBatchers() {
	close(s.quit)
	s.workers.Wait()
	for {
		select {
		case r := <-s.reqs:
			r.finish(exchangeRes{err: fmt.Errorf("postgres: exchange: store closed: %w", store.ErrUnavailable)})
		default:
			return
		}
	}
}

// batcher collects a batch when it holds the turn, and passes the turn on
// when its batch is done or has run for stallAfter.
func (s *Store) batcher() {
	batch := make([]*exchangeReq, 0, maxBatch)
	for {
		select {
		case <-s.quit:
			return
		case <-s.turn:
		}
		select {
		case <-s.quit:
			s.turn <- struct{}{}
			return
		case r := <-s.reqs:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		var once sync.Once
		pass := func() { once.Do(func() { s.turn <- struct{}{} }) }
		stalled := time.AfterFunc(stallAfter, pass)
		s.runBatch(batch)
		stalled.Stop()
		pass()
		clear(batch)
	}
}

// enqueue hands an exchange to the batchers and waits for its result.
func (s *Store) enqueue(ctx context.Context, tokenHash []byte, decide func(session.Chain) (session.Change, error)) error {
	if s.closed.Load() {
		return fmt.Errorf("postgres: exchange: store closed: %w", store.ErrUnavailable)
	}
	r := &exchangeReq{ctx: ctx, hash: tokenHash, decide: decide, done: make(chan exchangeRes, 1)}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return fmt.Errorf("postgres: exchange: %w", context.Cause(ctx))
	case <-s.quit:
		return fmt.Errorf("postgres: exchange: store closed: %w", store.ErrUnavailable)
	}
	// The batch runs under its own deadline (opTimeout), so this wait
	// is bounded; a caller that gives up earlier gets its context's
	// error, and whatever the batch decided for it stands, as if the
	// answer had been lost on the way.
	select {
	case res := <-r.done:
		if res.decideErr != nil {
			return res.decideErr
		}
		return res.err
	case <-ctx.Done():
		return fmt.Errorf("postgres: exchange: %w", context.Cause(ctx))
	}
}

// runBatch runs the requests as one transaction, or one by one if there
// is only one or the batch failed as a whole.
func (s *Store) runBatch(batch []*exchangeReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.finish(exchangeRes{err: fmt.Errorf("postgres: exchange: %w", context.Cause(r.ctx))})
			continue
		}
		live = append(live, r)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		s.runOne(live[0])
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var (
		results []exchangeRes
		err     error
	)
	for attempt := 0; attempt <= retries; attempt++ {
		results, err = s.exchangeBatch(ctx, live)
		if err == nil || ctx.Err() != nil || !errors.As(err, new(readPhaseError)) || !connectionLost(err) {
			break
		}
		if !isConnectError(err) {
			s.pool.Reset()
		}
	}
	switch {
	case err == nil:
		for i, r := range live {
			r.finish(results[i])
		}
	case ctx.Err() == nil && !connectionLost(err) && !isUnavailable(err):
		// Something in the batch was refused (a constraint, say):
		// nothing was committed; find out which request by running
		// each alone.
		for _, r := range live {
			s.runOne(r)
		}
	default:
		werr := wrapBatchErr(ctx, err)
		for _, r := range live {
			r.finish(exchangeRes{err: werr})
		}
	}
}

func wrapBatchErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("postgres: exchange: %w: %w", store.ErrUnavailable, err)
	}
	return wrap("exchange", err)
}

// runOne runs one request on the single-exchange path.
func (s *Store) runOne(r *exchangeReq) {
	var decideErr error
	err := s.do(r.ctx, "exchange", false, func(ctx context.Context) error {
		var err error
		decideErr, err = s.exchange(ctx, r.hash, r.decide)
		return err
	})
	r.finish(exchangeRes{decideErr: decideErr, err: err})
}

// The set-based statements of a batch are written so that PostgreSQL looks
// every token up through its primary key whatever the plan: an "= ANY"
// over a table that was empty when the statement was first planned keeps a
// cached plan that scans the whole table (seen on fresh databases, where a
// batch then took 15-20 ms instead of 5). The batch transaction also sets
// plan_cache_mode = force_custom_plan, so the writes are planned with the
// table's current size and the batch's actual row count.
const (
	lockFamiliesSQL = `SELECT ` + lockedFamilyColumns + ` FROM ` + lockedFamilyTables + `
WHERE f.id IN (
	SELECT t.family_id FROM unnest($1::bytea[]) AS h(hash)
	CROSS JOIN LATERAL (SELECT family_id FROM refresh_tokens WHERE hash = h.hash LIMIT 1) t
)
ORDER BY f.id
FOR NO KEY UPDATE OF f`

	readChainsSQL = `
SELECT t.hash, t.family_id, t.generation, t.issued_at, t.expires_at, t.consumed_at, t.successor_hash,
	s.hash, s.generation, s.issued_at, s.expires_at, s.consumed_at, s.successor_hash
FROM unnest($1::bytea[]) AS h(hash)
CROSS JOIN LATERAL (SELECT * FROM refresh_tokens WHERE hash = h.hash LIMIT 1) t
LEFT JOIN LATERAL (SELECT * FROM refresh_tokens WHERE hash = t.successor_hash LIMIT 1) s ON true`

	// consumeManySQL marks tokens consumed and inserts their successors;
	// a successor is inserted only if its predecessor was unconsumed.
	consumeManySQL = `
WITH v AS (
	SELECT * FROM unnest($1::bytea[], $2::timestamptz[], $3::bytea[], $4::int8[], $5::timestamptz[], $6::timestamptz[])
		AS v(hash, at, succ, gen, issued, expires)
), u AS (
	UPDATE refresh_tokens t SET consumed_at = v.at, successor_hash = v.succ
	FROM v WHERE t.hash = v.hash AND t.consumed_at IS NULL
	RETURNING t.family_id, v.succ, v.gen, v.issued, v.expires
)
INSERT INTO refresh_tokens (hash, family_id, generation, issued_at, expires_at)
SELECT succ, family_id, gen, issued, expires FROM u`

	revokeManySQL = `
UPDATE families f SET revoked_at = v.at, revoke_reason = v.reason
FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS v(id, at, reason)
WHERE f.id = v.id AND f.revoked_at IS NULL`
)

// exchangeBatch runs the requests in one transaction and returns each
// one's result. An error means nothing was committed (or, for an error in
// the final round trip, that the outcome is unknown, as for one exchange).
func (s *Store) exchangeBatch(ctx context.Context, reqs []*exchangeReq) ([]exchangeRes, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, readPhaseError{err}
	}
	defer conn.Release()

	hashes := make([][]byte, 0, len(reqs))
	seen := make(map[string]bool, len(reqs))
	for _, r := range reqs {
		if !seen[string(r.hash)] {
			seen[string(r.hash)] = true
			hashes = append(hashes, r.hash)
		}
	}
	families, tokens, err := readChains(ctx, conn.Conn(), hashes)
	if err != nil {
		return nil, readPhaseError{err}
	}

	// Decide in queue order, keeping families and tokens up to date so
	// that a request sees what the earlier ones of its family did.
	results := make([]exchangeRes, len(reqs))
	var w batchWrites
	for i, r := range reqs {
		tok, ok := tokens[string(r.hash)]
		var lf *lockedFamily
		if ok {
			lf, ok = families[tok.FamilyID]
		}
		if !ok {
			results[i].err = fmt.Errorf("postgres: exchange: %w", session.ErrNotFound)
			continue
		}
		fam := &lf.fam
		chain := session.Chain{Family: *fam, Token: *tok, Attributes: lf.attrs, SubjectClaims: lf.subjectClaims}
		chain.Attributes.Claims = maps.Clone(lf.attrs.Claims)
		chain.SubjectClaims = maps.Clone(lf.subjectClaims)
		if tok.Consumed() {
			if succ, ok := tokens[string(tok.SuccessorHash)]; ok {
				c := *succ
				chain.Successor = &c
			}
		}
		change, derr := r.decide(chain)
		if derr != nil {
			results[i].decideErr = derr
			continue
		}
		if change.Consume != nil && tok.Consumed() {
			// Only a decide that ignores the chain it was given asks
			// for this; the single-exchange path refuses it too.
			results[i].err = fmt.Errorf("postgres: exchange: %w", errConcurrentConsume)
			continue
		}
		if c := change.Consume; c != nil {
			at := change.ConsumedAt
			if at.IsZero() {
				at = orNow(c.IssuedAt)
			}
			next := &session.RefreshToken{Hash: c.Hash, FamilyID: fam.ID, Generation: c.Generation,
				IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}
			if _, dup := tokens[string(c.Hash)]; dup || bytes.Equal(c.Hash, tok.Hash) {
				// Let the single-exchange path refuse it, alone.
				_ = rollback(ctx, conn.Conn())
				return nil, errors.New("successor hash already stored")
			}
			tok.ConsumedAt, tok.SuccessorHash = at, c.Hash
			tokens[string(c.Hash)] = next
			w.consume(tok.Hash, at, next)
		}
		if change.Revoke && !fam.Revoked() {
			fam.RevokedAt, fam.RevokeReason = orNow(change.RevokeAt), change.RevokeReason
			w.revoke(fam.ID, fam.RevokedAt, fam.RevokeReason)
		}
	}
	err = w.commit(ctx, conn.Conn())
	s.forgetFamilies(w.revokeIDs...)
	if err != nil {
		return nil, err
	}
	return results, nil
}

// readChains begins the transaction, locks the families of the tokens in
// ID order and reads the tokens with their successors. Tokens whose family
// was not locked (deleted meanwhile) are left out.
func readChains(ctx context.Context, conn *pgx.Conn, hashes [][]byte) (map[string]*lockedFamily, map[string]*session.RefreshToken, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	b.Queue("SET LOCAL plan_cache_mode = force_custom_plan")
	b.Queue(lockFamiliesSQL, hashes)
	b.Queue(readChainsSQL, hashes)
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	for range 2 { // BEGIN, SET LOCAL
		if _, err := br.Exec(); err != nil {
			return nil, nil, err
		}
	}
	families := map[string]*lockedFamily{}
	rows, err := br.Query()
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		lf, err := scanLockedFamily(rows)
		if err != nil {
			rows.Close()
			return nil, nil, err
		}
		families[lf.fam.ID] = &lf
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}

	tokens := map[string]*session.RefreshToken{}
	rows, err = br.Query()
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			t                   session.RefreshToken
			tConsumed           pgtype.Timestamptz
			sHash, sSucc        []byte
			sGen                pgtype.Int8
			sIssued, sExp, sCon pgtype.Timestamptz
		)
		if err := rows.Scan(&t.Hash, &t.FamilyID, &t.Generation, &t.IssuedAt, &t.ExpiresAt, &tConsumed, &t.SuccessorHash,
			&sHash, &sGen, &sIssued, &sExp, &sCon, &sSucc); err != nil {
			return nil, nil, err
		}
		if _, locked := families[t.FamilyID]; !locked {
			continue
		}
		t.IssuedAt, t.ExpiresAt, t.ConsumedAt = t.IssuedAt.UTC(), t.ExpiresAt.UTC(), fromNull(tConsumed)
		tokens[string(t.Hash)] = &t
		if sHash != nil {
			if _, seen := tokens[string(sHash)]; !seen {
				tokens[string(sHash)] = &session.RefreshToken{
					Hash: sHash, FamilyID: t.FamilyID, Generation: sGen.Int64,
					IssuedAt: fromNull(sIssued), ExpiresAt: fromNull(sExp), ConsumedAt: fromNull(sCon), SuccessorHash: sSucc,
				}
			}
		}
	}
	return families, tokens, rows.Err()
}

// batchWrites collects the writes of a batch as column arrays.
type batchWrites struct {
	hashes, succs            [][]byte
	ats, issued, expires     []time.Time
	gens                     []int64
	revokeIDs, revokeReasons []string
	revokeAts                []time.Time
}

func (w *batchWrites) consume(hash []byte, at time.Time, next *session.RefreshToken) {
	w.hashes = append(w.hashes, hash)
	w.ats = append(w.ats, at)
	w.succs = append(w.succs, next.Hash)
	w.gens = append(w.gens, next.Generation)
	w.issued = append(w.issued, next.IssuedAt)
	w.expires = append(w.expires, next.ExpiresAt)
}

func (w *batchWrites) revoke(id string, at time.Time, reason string) {
	w.revokeIDs = append(w.revokeIDs, id)
	w.revokeAts = append(w.revokeAts, at)
	w.revokeReasons = append(w.revokeReasons, reason)
}

// commit writes everything and commits, in one round trip.
func (w *batchWrites) commit(ctx context.Context, conn *pgx.Conn) (err error) {
	b := &pgx.Batch{}
	if len(w.hashes) > 0 {
		b.Queue(consumeManySQL, w.hashes, w.ats, w.succs, w.gens, w.issued, w.expires)
	}
	if len(w.revokeIDs) > 0 {
		b.Queue(revokeManySQL, w.revokeIDs, w.revokeAts, w.revokeReasons)
	}
	b.Queue("COMMIT")
	br := conn.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	var tag pgconn.CommandTag
	if len(w.hashes) > 0 {
		if tag, err = br.Exec(); err != nil {
			return err
		}
		if tag.RowsAffected() != int64(len(w.hashes)) {
			_, _ = br.Exec()
			return errConcurrentConsume
		}
	}
	if len(w.revokeIDs) > 0 {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	_, err = br.Exec()
	return err
}
