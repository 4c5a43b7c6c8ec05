package sqlite

import (
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
)

// TestConcurrentOpensOfANewFile: replicas started together on one new
// file all open it. Turning a new file to WAL mode takes a lock that
// SQLite refuses at once, without its busy handler, while another
// connection holds the file; Open must wait for it instead of failing.
func TestConcurrentOpensOfANewFile(t *testing.T) {
	for round := range 3 {
		path := filepath.Join(t.TempDir(), "new.db")
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				s, err := Open(t.Context(), path)
				if err == nil {
					err = s.Close()
				}
				errs[i] = err
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: open %d of %d: %v", round, i, n, err)
			}
		}
	}
}

// TestOpenWaitsForAFileHeldByAnother: while another connection holds a
// write transaction on a new file, the change to WAL mode is refused at
// once; Open tries again instead of failing, and opens the file once the
// other lets go.
func TestOpenWaitsForAFileHeldByAnother(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	other, err := sql.Open("sqlite", dsn(path, "", "busy_timeout(5000)"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetMaxOpenConns(1)
	tx, err := other.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`CREATE TABLE held (x)`); err != nil {
		t.Fatal(err)
	}
	retried := make(chan struct{}, 1)
	onBusyRetry = func() {
		select {
		case retried <- struct{}{}:
		default:
		}
	}
	t.Cleanup(func() { onBusyRetry = nil })
	done := make(chan error, 1)
	go func() {
		s, err := Open(t.Context(), path)
		if err == nil {
			err = s.Close()
		}
		done <- err
	}()
	select {
	case <-retried: // refused while held, trying again
	case err := <-done:
		t.Fatalf("Open while another connection holds the new file returned %v before trying again", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Open after the other let go: %v", err)
	}
}
