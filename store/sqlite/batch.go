package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/silentrefresh/silentrefresh/store"
)

// Writes on the request path (Exchange, CreateFamilyCapped, RevokeFamily) are
// committed in groups: every call queues a request, and one goroutine, the
// committer, takes whatever is queued (up to maxBatch requests) and runs it
// as one IMMEDIATE transaction, each request inside its own SAVEPOINT, then
// commits once. With synchronous=FULL a commit is an fsync of the
// write-ahead log; a group shares it, so under load the cost of durability
// is paid once per batch instead of once per refresh. Nothing is answered
// before the commit that holds it is on disk.
//
// While one batch commits, the next requests queue; the next batch takes
// them all. With nothing else queued a batch holds one request, so an idle
// server answers as fast as before.
//
// Requests run in arrival order inside the transaction, so a request sees
// every write of the requests before it, those of its own family included,
// exactly as if they had run one after the other. A request that fails (its
// decide returns an error, a constraint refuses its write, its caller gave
// up) is rolled back to its savepoint and touches no other. An error that
// breaks the transaction itself (disk full, I/O error) fails the requests of
// the batch not yet committed, none of which is then written.
const maxBatch = 256

// writeReq is one queued write.
type writeReq struct {
	ctx context.Context
	// op runs the request inside the batch's transaction. decideErr is an
	// error to hand back unchanged (from a decide function); err is
	// already wrapped. Either rolls the request back to its savepoint.
	op   func(ctx context.Context, tx *batchTx) (decideErr, err error)
	what string // the operation, for error messages
	// exchange is set for an Exchange: the one request that keeps the
	// remembered chains (chaincache.go); any other forgets them.
	exchange bool
	done     chan writeRes
}

type writeRes struct {
	decideErr error
	err       error
}

func (r *writeReq) finish(res writeRes) { r.done <- res }

// committer is the goroutine that runs batches, and its queue.
type committer struct {
	reqs chan *writeReq
	quit chan struct{} // closed to stop the committer
	// stopped is closed once the committer has stopped and the queue is
	// drained: a request queued after that gets no answer from it.
	stopped chan struct{}
	wg      sync.WaitGroup

	mu     sync.Mutex // guards closed, and the send to reqs against close
	closed bool

	// onBatch, if set (by tests), is called with the size of each batch
	// before it runs, on the committer's goroutine.
	onBatch func(n int)
}

func (s *Store) startCommitter(onBatch func(int)) {
	s.c = &committer{reqs: make(chan *writeReq, maxBatch), quit: make(chan struct{}), stopped: make(chan struct{}), onBatch: onBatch}
	s.c.wg.Go(s.commitLoop)
}

// stopCommitter stops the committer after its current batch and fails
// whatever is still queued.
func (s *Store) stopCommitter() {
	c := s.c
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.quit)
	c.mu.Unlock()
	c.wg.Wait()
	for {
		select {
		case r := <-c.reqs:
			r.finish(writeRes{err: closedErr(r.what)})
		default:
			close(c.stopped)
			return
		}
	}
}

func closedErr(what string) error {
	return fmt.Errorf("sqlite: %s: store closed: %w", what, store.ErrUnavailable)
}

// write queues op and waits for the commit of the batch that ran it.
func (s *Store) write(ctx context.Context, what string, op func(ctx context.Context, tx *batchTx) (error, error)) (decideErr, err error) {
	return s.queue(ctx, &writeReq{ctx: ctx, op: op, what: what})
}

// queue queues r and waits for the commit of the batch that ran it.
func (s *Store) queue(ctx context.Context, r *writeReq) (decideErr, err error) {
	what := r.what
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, context.Cause(ctx))
	}
	r.done = make(chan writeRes, 1)
	c := s.c
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, closedErr(what)
	}
	c.mu.Unlock()
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return nil, fmt.Errorf("sqlite: %s: %w", what, context.Cause(ctx))
	case <-c.quit:
		return nil, closedErr(what)
	}
	// A caller that gives up while its batch runs gets its context's
	// error at once. The committer rolls its request back if it sees the
	// cancellation before the request's savepoint is released; after
	// that, the write commits with the batch, as if the answer had been
	// lost on the way.
	select {
	case res := <-r.done:
		return res.decideErr, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("sqlite: %s: %w", what, context.Cause(ctx))
	case <-c.stopped:
		select {
		case res := <-r.done: // answered before the committer stopped
			return res.decideErr, res.err
		default: // queued after the queue was drained
			return nil, closedErr(what)
		}
	}
}

func (s *Store) commitLoop() {
	c := s.c
	batch := make([]*writeReq, 0, maxBatch)
	for {
		select {
		case <-c.quit:
			return
		case r := <-c.reqs:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if c.onBatch != nil {
			c.onBatch(len(batch))
		}
		s.runBatch(batch)
		clear(batch)
	}
}

// runBatch runs the requests in one transaction and answers each after the
// commit.
func (s *Store) runBatch(batch []*writeReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if r.ctx.Err() != nil {
			r.finish(writeRes{err: fmt.Errorf("sqlite: %s: %w", r.what, context.Cause(r.ctx))})
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	// The batch runs under a context of its own, which nothing cancels:
	// one caller giving up must not interrupt the statements of the
	// others. Its waits are bounded all the same: BEGIN IMMEDIATE waits
	// for another process's write lock for at most BusyTimeout, and
	// nothing after it waits for a lock. (A context that can be done
	// would also cost a goroutine and a progress handler per statement
	// in the driver.)
	ctx := context.Background()
	sqlTx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		s.chains.invalidate()
		for _, r := range live {
			r.finish(writeRes{err: wrap(r.what+": begin", err)})
		}
		return
	}
	defer sqlTx.Rollback()
	tx := &batchTx{tx: sqlTx, ws: s.ws, m: make(map[string]*sql.Stmt, 8)}
	// Under the write lock: whether anybody else wrote since the last
	// batch, which the remembered chains depend on.
	var dv int64
	if err := tx.queryRow(ctx, qDataVersion).Scan(&dv); err == nil {
		s.chains.begin(dv)
		tx.chains = s.chains
	} else {
		s.chains.invalidate()
	}

	results := make([]writeRes, len(live))
	ok := make([]bool, len(live)) // results[i] is final and waits for the commit
	for i, r := range live {
		res, broken := s.runOne(ctx, tx, r)
		if broken != nil {
			s.chains.invalidate()
			// The transaction is gone: nothing of it will be written.
			for j := range live {
				if j < i && !ok[j] {
					continue // already answered
				}
				live[j].finish(writeRes{err: wrap(live[j].what, broken)})
			}
			return
		}
		if res.err != nil || res.decideErr != nil {
			r.finish(res)
			continue
		}
		results[i], ok[i] = res, true
	}
	if err := sqlTx.Commit(); err != nil {
		s.chains.invalidate()
		for i, r := range live {
			if ok[i] {
				r.finish(writeRes{err: wrap(r.what+": commit", err)})
			}
		}
		return
	}
	for i, r := range live {
		if ok[i] {
			r.finish(results[i])
		}
	}
}

// runOne runs one request inside its own savepoint, which is opened just
// before its first write (a request that only reads needs none). broken is
// non-nil if the savepoint could not be set or rolled back, which means the
// whole transaction is lost.
func (s *Store) runOne(ctx context.Context, tx *batchTx, r *writeReq) (res writeRes, broken error) {
	if err := r.ctx.Err(); err != nil {
		return writeRes{err: fmt.Errorf("sqlite: %s: %w", r.what, context.Cause(r.ctx))}, nil
	}
	tx.sp, tx.spErr = false, nil
	if !r.exchange && tx.chains != nil {
		tx.chains.clear()
	}
	res.decideErr, res.err = r.op(ctx, tx)
	if tx.spErr != nil {
		return writeRes{}, tx.spErr
	}
	if !tx.sp {
		if res.decideErr == nil && res.err == nil && r.ctx.Err() != nil {
			res.err = fmt.Errorf("sqlite: %s: %w", r.what, context.Cause(r.ctx))
		}
		return res, nil // nothing written
	}
	if res.decideErr == nil && res.err == nil && r.ctx.Err() != nil {
		res.err = fmt.Errorf("sqlite: %s: %w", r.what, context.Cause(r.ctx))
	}
	if res.decideErr != nil || res.err != nil {
		if tx.chains != nil {
			tx.chains.clear()
		}
		if _, err := tx.run(ctx, qRollbackTo); err != nil {
			return writeRes{}, errors.Join(res.err, err)
		}
	}
	if _, err := tx.run(ctx, qRelease); err != nil {
		return writeRes{}, err
	}
	return res, nil
}

// batchTx is the transaction of one batch, as the requests see it.
type batchTx struct {
	tx *sql.Tx
	ws *stmts
	m  map[string]*sql.Stmt // the transaction's copies of ws's statements, made on first use
	// sp says whether the current request's savepoint is open; spErr is
	// the error of opening it.
	sp    bool
	spErr error
	// chains are the remembered chains, nil when this batch could not
	// check that they are current.
	chains *chainCache
}

// stmt returns the transaction's copy of the prepared statement of q.
func (b *batchTx) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := b.m[q]; ok {
		return st, nil
	}
	st, err := b.ws.prepare(ctx, b.tx, q)
	if err != nil {
		return nil, err
	}
	b.m[q] = st
	return st, nil
}

func (b *batchTx) run(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := b.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// exec runs a statement that writes, opening the request's savepoint first.
func (b *batchTx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if !b.sp {
		if _, err := b.run(ctx, qSavepoint); err != nil {
			b.spErr = err
			return nil, err
		}
		b.sp = true
	}
	return b.run(ctx, q, args...)
}

// queryRow runs a statement that only reads, for one row.
func (b *batchTx) queryRow(ctx context.Context, q string, args ...any) row {
	st, err := b.stmt(ctx, q)
	if err != nil {
		return row{err: err}
	}
	return row{r: st.QueryRowContext(ctx, args...)}
}
