package session

import "sync"

// A store decides an exchange, then writes its change and waits for the
// commit to be durable: an fsync of SQLite's log, PostgreSQL's WAL flush,
// shared by a whole batch. Signing the new access token is the largest CPU
// cost of a refresh left, and it needs only the decision, so the engine
// signs while the store commits instead of after: the signature fills a
// wait for the disk instead of following it.
//
// Nothing signed ahead leaves the engine unless the exchange returns
// without error, that is once the commit holding the rotation is durable.
// It is answered only if it was signed for the decision the store
// committed, the last one decide made: a store may decide more than once
// (PostgreSQL runs a failed batch's requests again, one by one), and a
// token signed for an earlier decision is discarded and signed again.

// signAhead hands the decisions of one exchange from the store's goroutine
// to the refresh waiting for it.
type signAhead struct {
	// ready holds a token when a decision was made since it was last
	// taken; buffered 1.
	ready chan struct{}

	mu  sync.Mutex
	d   decision // the last decision
	ok  bool     // d grants the refresh
	seq int      // decisions made so far: d is the seq-th
}

func newSignAhead() *signAhead { return &signAhead{ready: make(chan struct{}, 1)} }

// decided records a decision of decide; ok says it grants the refresh.
func (s *signAhead) decided(d decision, ok bool) {
	s.mu.Lock()
	s.d, s.ok, s.seq = d, ok, s.seq+1
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// latest returns the last decision, its number (0 before any) and whether
// it grants the refresh.
func (s *signAhead) latest() (decision, int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d, s.seq, s.ok
}
