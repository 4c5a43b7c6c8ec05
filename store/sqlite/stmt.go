package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// stmts caches the prepared statements of one pool by their text: parsing
// the SQL was most of the CPU time of an Exchange.
type stmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt // guarded by mu
	// writes, if set (the writer's statements), tracks the statements
	// run through exec, query and queryRow: the writes made outside the
	// group commit (chaincache.go).
	writes *outsideWrites
}

func newStmts(db *sql.DB) *stmts { return &stmts{db: db, m: map[string]*sql.Stmt{}} }

// prepareAll prepares every query, so that no statement needs preparing
// inside a transaction (which holds the writer's only connection).
func (c *stmts) prepareAll(ctx context.Context, queries []string) error {
	for _, q := range queries {
		if _, err := c.prepare(ctx, nil, q); err != nil {
			return err
		}
	}
	return nil
}

// prepare returns the prepared statement of q, preparing it on first use.
// Inside a transaction it returns the transaction's copy.
func (c *stmts) prepare(ctx context.Context, tx *sql.Tx, q string) (*sql.Stmt, error) {
	c.mu.Lock()
	st, ok := c.m[q]
	c.mu.Unlock()
	if tx != nil {
		if !ok {
			// Not prepared at Open: preparing on the pool could wait for
			// the connection that tx holds, so prepare it in tx alone.
			return tx.PrepareContext(ctx, q)
		}
		return tx.StmtContext(ctx, st), nil
	}
	if ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[q]; ok { // prepared meanwhile by another goroutine
		st.Close()
		return prev, nil
	}
	c.m[q] = st
	return st, nil
}

func (c *stmts) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}

// counted marks a statement in flight in writes until the returned
// tracker's end is called; nil without writes.
func (c *stmts) counted() *outsideWrites {
	if c.writes != nil {
		c.writes.inFlight.Add(1)
	}
	return c.writes
}

// exec runs q on the pool, or in tx if it is not nil.
func (c *stmts) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	defer c.counted().end()
	st, err := c.prepare(ctx, tx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// query runs q on the pool, or in tx if it is not nil.
func (c *stmts) query(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	defer c.counted().end()
	st, err := c.prepare(ctx, tx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow runs q on the pool, or in tx if it is not nil, for one row.
func (c *stmts) queryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) row {
	defer c.counted().end()
	st, err := c.prepare(ctx, tx, q)
	if err != nil {
		return row{err: err}
	}
	return row{r: st.QueryRowContext(ctx, args...)}
}

// row is a *sql.Row that may carry the error of preparing its statement.
type row struct {
	r   *sql.Row
	err error
}

func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.r.Scan(dest...)
}
