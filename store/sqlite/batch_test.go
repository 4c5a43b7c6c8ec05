package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/store/storetest"
)

// batchStore is a Store on a new file whose batch sizes the test can see,
// with a way to make the next batch hold exactly the requests it queues.
type batchStore struct {
	*Store
	mu    sync.Mutex
	sizes []int // guarded by mu
}

func openBatchStore(t *testing.T) *batchStore {
	t.Helper()
	bs := &batchStore{}
	o := defaultOptions()
	o.onBatch = func(n int) {
		bs.mu.Lock()
		bs.sizes = append(bs.sizes, n)
		bs.mu.Unlock()
	}
	s, err := open(t.Context(), filepath.Join(t.TempDir(), "batch.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	bs.Store = s
	return bs
}

// lastBatch is the size of the last batch run.
func (bs *batchStore) lastBatch() int {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if len(bs.sizes) == 0 {
		return 0
	}
	return bs.sizes[len(bs.sizes)-1]
}

// oneBatch runs the n calls of fn (each with its index) as one batch: it
// holds the committer inside an Exchange of a family of its own until all
// n requests are queued, then lets it go, and waits for every call.
// beforeRelease, if given, runs once they are queued, before the batch.
func (bs *batchStore) oneBatch(t *testing.T, n int, fn func(i int), beforeRelease ...func()) {
	t.Helper()
	if n > maxBatch {
		t.Fatalf("%d requests do not fit one batch of %d", n, maxBatch)
	}
	_, gateTok := newTestFamily(t, bs, fmt.Sprintf("gate-%p-%d", t, n))
	entered, release := make(chan struct{}), make(chan struct{})
	gateDone := make(chan error, 1)
	go func() {
		gateDone <- bs.Exchange(context.Background(), gateTok.Hash, func(session.Chain) (session.Change, error) {
			close(entered)
			<-release
			return session.Change{}, nil
		})
	}()
	<-entered
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { fn(i) })
	}
	for len(bs.c.reqs) < n {
		runtime.Gosched()
	}
	for _, f := range beforeRelease {
		f()
	}
	close(release)
	if err := <-gateDone; err != nil {
		t.Fatalf("gate exchange: %v", err)
	}
	wg.Wait()
	if got := bs.lastBatch(); got != n {
		t.Fatalf("the requests ran in a batch of %d, want all %d in one", got, n)
	}
}

// newTestFamily stores a family with its first token.
func newTestFamily(t *testing.T, s *batchStore, id string) (session.Family, session.RefreshToken) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	f := session.Family{ID: id, Subject: "user-" + id, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
	first := session.RefreshToken{Hash: storetest.Hash("rt-" + id), FamilyID: id, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	if _, err := s.CreateFamilyCapped(t.Context(), f, first, 0, ""); err != nil {
		t.Fatalf("CreateFamily(%s): %v", id, err)
	}
	return f, first
}

func newBatchEngine(t *testing.T, st session.Store) *session.Engine {
	t.Helper()
	e, err := session.NewEngine(t.Context(), st, storetest.CountingMinter(), session.Config{Grace: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestBatchManyFamiliesAndOneToken: one batch holds one refresh of each of
// many families and many refreshes of one token. Each family rotates once;
// of the callers of the one token exactly one rotates and the others, which
// see its write inside the same transaction, replay the identical
// successor.
func TestBatchManyFamiliesAndOneToken(t *testing.T) {
	bs := openBatchStore(t)
	e := newBatchEngine(t, bs)
	const families, callers = 40, 40
	logins := make([]session.Grant, families)
	for i := range logins {
		g, err := e.Login(t.Context(), fmt.Sprintf("user%d", i), "web")
		if err != nil {
			t.Fatal(err)
		}
		logins[i] = g
	}
	grants := make([]session.Grant, families+callers)
	errs := make([]error, families+callers)
	bs.oneBatch(t, families+callers, func(i int) {
		rt := logins[0].RefreshToken // the one token
		if i < families {
			rt = logins[i].RefreshToken
		}
		grants[i], errs[i] = e.Refresh(context.Background(), rt, "web")
	})

	rotatedShared := 0
	for i, g := range grants {
		if errs[i] != nil {
			t.Fatalf("refresh %d: %v", i, errs[i])
		}
		if i > 0 && i < families {
			if g.Outcome != session.OutcomeRotated {
				t.Errorf("family %d: outcome %s, want rotated", i, g.Outcome)
			}
			continue
		}
		switch g.Outcome {
		case session.OutcomeRotated:
			rotatedShared++
		case session.OutcomeGraceReplay:
		default:
			t.Errorf("caller %d of the one token: outcome %s", i, g.Outcome)
		}
		if g.RefreshToken != grants[0].RefreshToken {
			t.Errorf("caller %d of the one token got another successor than caller 0", i)
		}
	}
	if rotatedShared != 1 {
		t.Errorf("%d callers of the one token rotated it, want exactly 1", rotatedShared)
	}
	for i, l := range logins {
		toks, err := bs.FamilyTokens(t.Context(), l.Family.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) != 2 || !toks[0].Consumed() || toks[1].Consumed() {
			t.Errorf("family %d: %d tokens after the batch, want 2 (one consumed, one live)", i, len(toks))
		}
	}
	// Every successor works.
	for i := range families {
		if _, err := e.Refresh(t.Context(), grants[i].RefreshToken, "web"); err != nil {
			t.Errorf("family %d: refresh of the successor: %v", i, err)
		}
	}
}

// TestBatchFailureInTheMiddle: requests that fail inside a batch — a
// decide error, a successor hash that is already stored (its UPDATE ran
// before the INSERT failed), a family ID that exists — are rolled back on
// their own; the requests around them commit.
func TestBatchFailureInTheMiddle(t *testing.T) {
	bs := openBatchStore(t)
	ids := []string{"ok-a", "decide-error", "dup-successor", "ok-b"}
	toks := make([]session.RefreshToken, len(ids))
	for i, id := range ids {
		_, toks[i] = newTestFamily(t, bs, id)
	}
	errDecide := errors.New("refused by decide")
	now := time.Now().UTC().Truncate(time.Microsecond)
	next := func(i int, hash []byte) *session.RefreshToken {
		return &session.RefreshToken{Hash: hash, FamilyID: ids[i], Generation: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	}
	errs := make([]error, len(ids)+1)
	bs.oneBatch(t, len(ids)+1, func(i int) {
		if i == len(ids) { // a login whose family ID is taken
			f, first := session.Family{ID: "ok-a", Subject: "x", CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
				session.RefreshToken{Hash: storetest.Hash("fresh"), IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
			_, errs[i] = bs.CreateFamilyCapped(context.Background(), f, first, 0, "")
			return
		}
		errs[i] = bs.Exchange(context.Background(), toks[i].Hash, func(c session.Chain) (session.Change, error) {
			switch ids[i] {
			case "decide-error":
				return session.Change{}, errDecide
			case "dup-successor":
				// The successor's hash is the first token of ok-b.
				return session.Change{Consume: next(i, toks[3].Hash), ConsumedAt: now}, nil
			}
			return session.Change{Consume: next(i, storetest.Hash("next-"+ids[i])), ConsumedAt: now}, nil
		})
	})
	if errs[0] != nil || errs[3] != nil {
		t.Fatalf("the good requests failed: %v, %v", errs[0], errs[3])
	}
	if errs[1] != errDecide {
		t.Errorf("decide error came back as %v, want it unchanged", errs[1])
	}
	if errs[2] == nil {
		t.Error("a successor with a stored hash was accepted")
	}
	if errs[4] == nil {
		t.Error("a second family with a taken ID was accepted")
	}
	for _, id := range ids {
		got, err := bs.FamilyTokens(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		wantRotated := id == "ok-a" || id == "ok-b"
		if wantRotated && (len(got) != 2 || !got[0].Consumed()) {
			t.Errorf("%s: %d tokens, first consumed=%v; want rotated", id, len(got), len(got) > 0 && got[0].Consumed())
		}
		if !wantRotated && (len(got) != 1 || got[0].Consumed()) {
			t.Errorf("%s: %d tokens, first consumed=%v; want untouched", id, len(got), len(got) > 0 && got[0].Consumed())
		}
	}
	f, err := bs.Family(t.Context(), "ok-a")
	if err != nil || f.Subject != "user-ok-a" {
		t.Errorf("family ok-a = %+v, %v; want the first one kept", f, err)
	}
}

// TestBatchCancelled: a caller whose context ends while its batch runs
// gets its context's error and nothing of its request is written; one whose
// context ended while it was queued never runs; the others commit.
func TestBatchCancelled(t *testing.T) {
	bs := openBatchStore(t)
	ids := []string{"before", "cancelled-in-decide", "cancelled-queued", "after"}
	toks := make([]session.RefreshToken, len(ids))
	for i, id := range ids {
		_, toks[i] = newTestFamily(t, bs, id)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	ctxs := make([]context.Context, len(ids))
	cancels := make([]context.CancelFunc, len(ids))
	for i := range ids {
		ctxs[i], cancels[i] = context.WithCancel(context.Background())
		defer cancels[i]()
	}
	decided := make([]bool, len(ids))
	errs := make([]error, len(ids))
	bs.oneBatch(t, len(ids), func(i int) {
		errs[i] = bs.Exchange(ctxs[i], toks[i].Hash, func(c session.Chain) (session.Change, error) {
			decided[i] = true
			if ids[i] == "cancelled-in-decide" {
				cancels[i]()
			}
			return session.Change{
				Consume:    &session.RefreshToken{Hash: storetest.Hash("next-" + ids[i]), FamilyID: ids[i], Generation: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour)},
				ConsumedAt: now,
			}, nil
		})
	}, func() {
		// Cancelled after it is queued, before the batch runs.
		cancels[2]()
	})
	for i, id := range ids {
		cancelled := id != "before" && id != "after"
		if cancelled && !errors.Is(errs[i], context.Canceled) {
			t.Errorf("%s: error %v, want context.Canceled", id, errs[i])
		}
		if !cancelled && errs[i] != nil {
			t.Errorf("%s: %v", id, errs[i])
		}
		got, err := bs.FamilyTokens(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if cancelled && (len(got) != 1 || got[0].Consumed()) {
			t.Errorf("%s: %d tokens, first consumed=%v; want nothing written", id, len(got), got[0].Consumed())
		}
		if !cancelled && (len(got) != 2 || !got[0].Consumed()) {
			t.Errorf("%s: %d tokens; want rotated", id, len(got))
		}
	}
	if decided[2] {
		t.Error("the request cancelled in the queue was run")
	}
}

// TestBatchClose: writers racing Close all return — committed, or refused
// with store.ErrUnavailable — and none waits for ever.
func TestBatchClose(t *testing.T) {
	bs := openBatchStore(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	var wg sync.WaitGroup
	errs := make([]error, 64)
	for i := range errs {
		wg.Go(func() {
			id := fmt.Sprintf("close-%d", i)
			f := session.Family{ID: id, Subject: "s", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			first := session.RefreshToken{Hash: storetest.Hash(id), IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
			_, errs[i] = bs.CreateFamilyCapped(context.Background(), f, first, 0, "")
		})
	}
	if err := bs.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("writer %d: %v, want nil or store.ErrUnavailable", i, err)
		}
	}
}
