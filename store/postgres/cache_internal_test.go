package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/silentrefresh/silentrefresh/registry"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/store/postgres/pgtest"
	"github.com/silentrefresh/silentrefresh/user"
)

// Options only the tests use.

func withHooks(h *hooks) Option         { return func(o *options) { o.hooks = h } }
func withClock(now func() int64) Option { return func(o *options) { o.now = now } }
func withSizes(families, clients int) Option {
	return func(o *options) { o.familyN, o.clientN = families, clients }
}

// bound is how long a test waits for something the listener does before
// it fails: a bound on a wait, never a way to synchronise.
const bound = 10 * time.Second

// recorder collects the listener's events.
type recorder struct {
	mu     sync.Mutex
	events [][2]string // guarded by mu
	signal chan struct{}
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1)} }

func (r *recorder) event(kind, detail string) {
	r.mu.Lock()
	r.events = append(r.events, [2]string{kind, detail})
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// mark returns the position of the next event.
func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// waitFor waits for an event of kind with detail (any detail if "") at or
// after position from, and returns the position after it.
func (r *recorder) waitFor(t *testing.T, from int, kind, detail string) int {
	t.Helper()
	deadline := time.After(bound)
	for {
		r.mu.Lock()
		for i := from; i < len(r.events); i++ {
			if e := r.events[i]; e[0] == kind && (detail == "" || e[1] == detail) {
				r.mu.Unlock()
				return i + 1
			}
		}
		r.mu.Unlock()
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("no %s %q event within %v", kind, detail, bound)
		}
	}
}

// gate blocks the goroutines that pass it while it is shut.
type gate struct {
	mu      sync.Mutex
	shutCh  chan struct{} // nil while open; guarded by mu
	blocked chan struct{} // signalled when a goroutine blocks
}

func newGate() *gate { return &gate{blocked: make(chan struct{}, 1)} }

func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.blocked:
	default:
	}
	g.shutCh = make(chan struct{})
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shutCh != nil {
		close(g.shutCh)
		g.shutCh = nil
	}
}

func (g *gate) pass(ctx context.Context) {
	g.mu.Lock()
	c := g.shutCh
	g.mu.Unlock()
	if c == nil {
		return
	}
	select {
	case g.blocked <- struct{}{}:
	default:
	}
	select {
	case <-c:
	case <-ctx.Done():
	}
}

func (g *gate) awaitBlocked(t *testing.T) {
	t.Helper()
	select {
	case <-g.blocked:
	case <-time.After(bound):
		t.Fatalf("nothing reached the gate within %v", bound)
	}
}

// replica is one Store with its listener's events.
type replica struct {
	*Store
	rec *recorder
}

// openReplica opens a store on dsn and waits for its listener to vouch
// for the caches.
func openReplica(t *testing.T, dsn string, h *hooks, opts ...Option) replica {
	t.Helper()
	if h == nil {
		h = &hooks{}
	}
	rec := newRecorder()
	h.event = rec.event
	s, err := Open(t.Context(), dsn, append(opts, withHooks(h))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rec.waitFor(t, 0, "up", "")
	return replica{s, rec}
}

// cached reports whether the family is in the store's cache.
func (r replica) cached(id string) bool {
	_, ok := r.cache.families.get(id)
	return ok
}

// lookup reads the family and reports whether it came from the cache.
func (r replica) lookup(t *testing.T, id string) (session.Family, error, bool) {
	t.Helper()
	before := r.cache.queries.Load()
	f, err := r.Family(t.Context(), id)
	return f, err, r.cache.queries.Load() == before
}

// warm reads the family until it is a cache hit.
func (r replica) warm(t *testing.T, id string) {
	t.Helper()
	if _, err := r.Family(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if _, err, hit := r.lookup(t, id); err != nil || !hit {
		t.Fatalf("second Family(%s): err %v, hit %v; want a cache hit", id, err, hit)
	}
}

func newFam(t *testing.T, s *Store, id, subject string, expires time.Time) {
	t.Helper()
	f := session.Family{ID: id, Subject: subject, CreatedAt: t0, ExpiresAt: expires}
	tok := session.RefreshToken{Hash: h(id + "/0"), FamilyID: id, IssuedAt: t0, ExpiresAt: expires}
	if _, err := s.CreateFamilyCapped(t.Context(), f, tok, 0, ""); err != nil {
		t.Fatal(err)
	}
}

// refused reports whether a session check of the family would fail: it
// is revoked or gone.
func refused(f session.Family, err error) bool {
	return errors.Is(err, session.ErrNotFound) || (err == nil && f.Revoked())
}

// TestCacheReplicaRevocation: two replicas; a revocation on A is refused by
// A at once and by B once the notification is in.
func TestCacheReplicaRevocation(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	a := openReplica(t, dsn, nil)
	b := openReplica(t, dsn, nil)
	newFam(t, a.Store, "fam", "alice", t0.Add(time.Hour))
	a.warm(t, "fam")
	b.warm(t, "fam")

	from := b.rec.mark()
	start := time.Now()
	if err := a.RevokeFamily(t.Context(), "fam", t0.Add(time.Minute), "logout"); err != nil {
		t.Fatal(err)
	}
	committed := time.Since(start)
	if f, err := a.Family(t.Context(), "fam"); !refused(f, err) {
		t.Fatalf("A right after its own revocation: %+v, %v; want revoked", f, err)
	}
	b.rec.waitFor(t, from, "notify", "f:fam")
	t.Logf("B applied the notification %v after A began RevokeFamily (which returned after %v)",
		time.Since(start).Round(time.Microsecond), committed.Round(time.Microsecond))
	f, err, hit := b.lookup(t, "fam")
	if !refused(f, err) || hit {
		t.Fatalf("B after the notification: %+v, %v (hit %v); want revoked, from the database", f, err, hit)
	}
	// And the revoked record is cached in its turn.
	if f, err, hit := b.lookup(t, "fam"); !refused(f, err) || !hit || f.RevokeReason != "logout" {
		t.Fatalf("B again: %+v, %v (hit %v); want the revoked record from the cache", f, err, hit)
	}
}

// TestCacheSQLWrites: changes made with SQL by someone else (an operator)
// invalidate too, and TRUNCATE clears everything.
func TestCacheSQLWrites(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	b := openReplica(t, dsn, nil)
	newFam(t, b.Store, "f1", "alice", t0.Add(time.Hour))
	newFam(t, b.Store, "f2", "alice", t0.Add(time.Hour))
	b.warm(t, "f1")
	b.warm(t, "f2")

	from := b.rec.mark()
	pgtest.Exec(t, dsn, `UPDATE families SET expires_at = $1 WHERE id = 'f1'`, t0)
	b.rec.waitFor(t, from, "notify", "f:f1")
	if f, err, hit := b.lookup(t, "f1"); err != nil || hit || !f.ExpiresAt.Equal(t0) {
		t.Fatalf("f1 after an UPDATE of its expiry: %+v, %v (hit %v)", f, err, hit)
	}
	if !b.cached("f2") {
		t.Fatal("f2 was dropped by a change to f1")
	}
	from = b.rec.mark()
	pgtest.Exec(t, dsn, `DELETE FROM families WHERE id = 'f2'`)
	b.rec.waitFor(t, from, "notify", "f:f2")
	if f, err := b.Family(t.Context(), "f2"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("f2 after DELETE: %+v, %v; want ErrNotFound", f, err)
	}

	b.warm(t, "f1")
	from = b.rec.mark()
	pgtest.Exec(t, dsn, `TRUNCATE families CASCADE`)
	b.rec.waitFor(t, from, "notify", "*")
	if b.cached("f1") {
		t.Fatal("f1 still cached after TRUNCATE")
	}
	if _, err := b.Family(t.Context(), "f1"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("f1 after TRUNCATE: %v", err)
	}
}

// TestCacheReplicaClients: a client added, changed or removed on A (or in
// SQL) is seen by B; A sees its own changes at once.
func TestCacheReplicaClients(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	a := openReplica(t, dsn, nil)
	b := openReplica(t, dsn, nil)
	ctx := t.Context()
	client := func(r replica) (registry.Client, error, bool) {
		before := r.cache.queries.Load()
		c, err := r.Client(ctx, "app")
		return c, err, r.cache.queries.Load() == before
	}
	for _, r := range []replica{a, b} {
		if _, err, _ := client(r); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("unknown client: %v", err)
		}
		if _, err, hit := client(r); !errors.Is(err, registry.ErrNotFound) || !hit {
			t.Fatalf("unknown client again: %v (hit %v); want a remembered ErrNotFound", err, hit)
		}
	}

	from := b.rec.mark()
	if err := a.AddClient(ctx, registry.Client{ID: "app", Scopes: []string{"read"}, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if c, err, _ := client(a); err != nil || !slices.Equal(c.Scopes, []string{"read"}) {
		t.Fatalf("A right after AddClient: %+v, %v", c, err)
	}
	b.rec.waitFor(t, from, "notify", "c:app")
	if c, err, _ := client(b); err != nil || c.ID != "app" {
		t.Fatalf("B after AddClient: %+v, %v", c, err)
	}
	c, err, hit := client(b)
	if err != nil || !hit {
		t.Fatalf("B again: %v (hit %v)", err, hit)
	}
	c.Scopes[0] = "changed by the caller"
	if c, _, _ := client(b); c.Scopes[0] != "read" {
		t.Fatalf("a caller's change to its copy reached the cache: %v", c.Scopes)
	}

	from, aFrom := b.rec.mark(), a.rec.mark()
	pgtest.Exec(t, dsn, `UPDATE clients SET scopes = '["read", "write"]' WHERE id = 'app'`)
	b.rec.waitFor(t, from, "notify", "c:app")
	if c, err, _ := client(b); err != nil || !slices.Equal(c.Scopes, []string{"read", "write"}) {
		t.Fatalf("B after an UPDATE: %+v, %v", c, err)
	}
	a.rec.waitFor(t, aFrom, "notify", "c:app")
	for i := range 2 {
		if c, err, hit := client(a); err != nil || len(c.Scopes) != 2 || hit != (i == 1) {
			t.Fatalf("A after the UPDATE, lookup %d: %+v, %v (hit %v)", i, c, err, hit)
		}
	}
	from = b.rec.mark()
	if err := a.RemoveClient(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if _, err, _ := client(a); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("A right after RemoveClient: %v", err)
	}
	b.rec.waitFor(t, from, "notify", "c:app")
	if _, err, _ := client(b); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("B after RemoveClient: %v", err)
	}
}

// TestCacheRevokingMethods: every Store method that revokes or deletes a
// family drops it from this process's cache as soon as it returns, before
// the notification is read (A's listener is held still for that), and B
// drops it when the notification comes.
func TestCacheRevokingMethods(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	a, stall := openStallable(t, dsn)
	b := openReplica(t, dsn, nil)
	ctx := t.Context()
	at := t0.Add(time.Minute)

	tests := []struct {
		name  string
		setup func(t *testing.T, id string) // creates family id
		act   func(t *testing.T, id string)
	}{
		{name: "RevokeFamily", act: func(t *testing.T, id string) {
			if err := a.RevokeFamily(ctx, id, at, "logout"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "Exchange revoking", act: func(t *testing.T, id string) {
			err := a.Exchange(ctx, h(id+"/0"), func(session.Chain) (session.Change, error) {
				return session.Change{Revoke: true, RevokeAt: at, RevokeReason: "reused"}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}},
		{name: "batched Exchange revoking", setup: func(t *testing.T, id string) {
			newFam(t, a.Store, id, "batch-"+id, t0.Add(time.Hour))
			newFam(t, a.Store, id+"-other", "batch-"+id, t0.Add(time.Hour))
		}, act: func(t *testing.T, id string) {
			revoke := func(session.Chain) (session.Change, error) {
				return session.Change{Revoke: true, RevokeAt: at, RevokeReason: "reused"}, nil
			}
			r1, r2 := req(ctx, h(id+"/0"), revoke), req(ctx, h(id+"-other/0"), consumeDecide(h(id+"-other/1"), new(session.Chain)))
			a.runBatch([]*exchangeReq{r1, r2})
			if res := result(r1); res.err != nil || res.decideErr != nil {
				t.Fatal(res)
			}
		}},
		{name: "session cap eviction", act: func(t *testing.T, id string) {
			f := session.Family{ID: id + "-new", Subject: "subj-" + id, CreatedAt: t0.Add(time.Second), ExpiresAt: t0.Add(time.Hour)}
			tok := session.RefreshToken{Hash: h(id + "-new/0"), FamilyID: f.ID, IssuedAt: f.CreatedAt, ExpiresAt: f.ExpiresAt}
			victims, err := a.CreateFamilyCapped(ctx, f, tok, 1, "session_limit")
			if err != nil || !slices.Equal(victims, []string{id}) {
				t.Fatalf("CreateFamilyCapped = %v, %v; want [%s]", victims, err, id)
			}
		}},
		{name: "RevokeSubject", act: func(t *testing.T, id string) {
			if n, err := a.RevokeSubject(ctx, "subj-"+id, at, "logout_all"); err != nil || n != 1 {
				t.Fatalf("RevokeSubject = %d, %v", n, err)
			}
		}},
		{name: "user disabled", setup: withUser(a.Store), act: func(t *testing.T, id string) {
			if _, err := a.UpdateUser(ctx, "subj-"+id, store.UserChange{Disable: true, At: at, RevokeReason: "user_disabled"}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "user deleted", setup: withUser(a.Store), act: func(t *testing.T, id string) {
			if _, err := a.UpdateUser(ctx, "subj-"+id, store.UserChange{Delete: true, At: at, RevokeReason: "user_deleted"}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "password changed", setup: withUser(a.Store), act: func(t *testing.T, id string) {
			if _, err := a.UpdateUser(ctx, "subj-"+id, store.UserChange{PasswordHash: "new", At: at, RevokeReason: "password_changed"}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "DeleteExpired", setup: func(t *testing.T, id string) {
			newFam(t, a.Store, id, "subj-"+id, t0.Add(time.Second))
		}, act: func(t *testing.T, id string) {
			if n, err := a.DeleteExpired(ctx, t0.Add(time.Minute)); err != nil || n != 1 {
				t.Fatalf("DeleteExpired = %d, %v", n, err)
			}
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("m%d", i)
			if tc.setup != nil {
				tc.setup(t, id)
			} else {
				newFam(t, a.Store, id, "subj-"+id, t0.Add(time.Hour))
			}
			a.warm(t, id)
			b.warm(t, id)

			stall.shut()
			stall.awaitBlocked(t)
			from := b.rec.mark()
			aFrom := a.rec.mark()
			tc.act(t, id)
			if a.cached(id) {
				t.Errorf("A still caches %s after its own change", id)
			}
			if f, err := a.Family(ctx, id); !refused(f, err) {
				t.Errorf("A right after its own change: %+v, %v; want refused", f, err)
			}
			if a.rec.mark() != aFrom {
				t.Fatal("A's listener read notifications while stalled; the check above proves nothing")
			}
			stall.open()
			// Let A read the notification now, so that it cannot
			// interrupt the next case's fills.
			a.rec.waitFor(t, aFrom, "notify", "f:"+id)

			b.rec.waitFor(t, from, "notify", "f:"+id)
			if f, err := b.Family(ctx, id); !refused(f, err) {
				t.Errorf("B after the notification: %+v, %v; want refused", f, err)
			}
		})
	}
}

// openStallable opens a replica whose listener stops before its next
// heartbeat while the gate is shut, reading no notification meanwhile. Its
// clock stands still, so its caches stay usable all the same: what it
// forgets then, it forgets by itself.
func openStallable(t *testing.T, dsn string) (replica, *gate) {
	t.Helper()
	var fake atomic.Int64
	fake.Store(1)
	stall := newGate()
	return openReplica(t, dsn, &hooks{beforeBeat: stall.pass}, withClock(fake.Load)), stall
}

// TestCacheClientMethods: AddClient and RemoveClient drop the client from
// this process's cache before any notification is read.
func TestCacheClientMethods(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	a, stall := openStallable(t, dsn)
	ctx := t.Context()
	for i := range 2 {
		if _, err := a.Client(ctx, "app"); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("lookup %d of an unknown client: %v", i, err)
		}
	}
	if _, ok := a.cache.clients.get("app"); !ok {
		t.Fatal("the unknown client is not remembered")
	}
	stall.shut()
	stall.awaitBlocked(t)
	from := a.rec.mark()
	if err := a.AddClient(ctx, registry.Client{ID: "app", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if c, err := a.Client(ctx, "app"); err != nil || c.ID != "app" {
		t.Fatalf("right after AddClient: %+v, %v", c, err)
	}
	if _, ok := a.cache.clients.get("app"); !ok {
		t.Fatal("the added client is not cached")
	}
	if err := a.RemoveClient(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client(ctx, "app"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("right after RemoveClient: %v", err)
	}
	if a.rec.mark() != from {
		t.Fatal("the listener read notifications while stalled; the checks above prove nothing")
	}
	stall.open()
}

// withUser creates family id for the user subj-id, who exists.
func withUser(s *Store) func(t *testing.T, id string) {
	return func(t *testing.T, id string) {
		t.Helper()
		u := user.User{ID: "subj-" + id, Username: "user-" + id, PasswordHash: "h", CreatedAt: t0}
		if err := s.CreateUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
		newFam(t, s, id, u.ID, t0.Add(time.Hour))
	}
}

// TestCacheListenerKilled: while the listener's connection is gone the
// caches are not used, so a revocation made meanwhile is seen at once;
// after it reconnects the caches start empty.
func TestCacheListenerKilled(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	a := openReplica(t, dsn, nil)
	hold := newGate()
	b := openReplica(t, dsn, &hooks{beforeConnect: hold.pass})
	newFam(t, a.Store, "fam", "alice", t0.Add(time.Hour))
	newFam(t, a.Store, "other", "alice", t0.Add(time.Hour))
	b.warm(t, "fam")
	b.warm(t, "other")

	hold.shut()
	from := b.rec.mark()
	pid := b.listen.pid.Load()
	if pid == 0 {
		t.Fatal("the listener has no connection")
	}
	pgtest.Exec(t, dsn, `SELECT pg_terminate_backend($1)`, int(pid))
	from = b.rec.waitFor(t, from, "down", "")
	hold.awaitBlocked(t) // it stays down until the gate opens

	if err := a.RevokeFamily(t.Context(), "fam", t0.Add(time.Minute), "logout"); err != nil {
		t.Fatal(err)
	}
	if f, err, hit := b.lookup(t, "fam"); !refused(f, err) || hit {
		t.Fatalf("B with its listener down: %+v, %v (hit %v); want revoked, from the database", f, err, hit)
	}
	if _, err, hit := b.lookup(t, "other"); err != nil || hit {
		t.Fatalf("B with its listener down: %v (hit %v); want a query", err, hit)
	}
	newFam(t, a.Store, "new", "alice", t0.Add(time.Hour))
	if _, err := b.Family(t.Context(), "new"); err != nil {
		t.Fatal(err)
	}
	if b.cached("new") {
		t.Fatal("a lookup filled the cache while the listener was down")
	}

	hold.open()
	b.rec.waitFor(t, from, "up", "")
	if n := b.cache.families.len(); n != 0 {
		t.Fatalf("%d families cached after the reconnect; want a cleared cache", n)
	}
	if newPID := b.listen.pid.Load(); newPID == pid || newPID == 0 {
		t.Fatalf("listener pid %d after the reconnect (was %d)", newPID, pid)
	}
	b.warm(t, "other")
}

// TestCacheHealthDeadline: a listener that stops hearing its heartbeats
// (here: stalled before sending one) stops vouching once healthWindow has
// passed since the last one was sent, without any error.
func TestCacheHealthDeadline(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	a := openReplica(t, dsn, nil)
	var fake atomic.Int64
	fake.Store(1)
	stall := newGate()
	b := openReplica(t, dsn, &hooks{beforeBeat: stall.pass}, withClock(fake.Load))
	newFam(t, a.Store, "fam", "alice", t0.Add(time.Hour))
	b.warm(t, "fam")

	stall.shut()
	stall.awaitBlocked(t)
	if _, err, hit := b.lookup(t, "fam"); err != nil || !hit {
		t.Fatalf("within the window: %v (hit %v); want a hit", err, hit)
	}
	fake.Add(int64(healthWindow))
	if err := a.RevokeFamily(t.Context(), "fam", t0.Add(time.Minute), "logout"); err != nil {
		t.Fatal(err)
	}
	if f, err, hit := b.lookup(t, "fam"); !refused(f, err) || hit {
		t.Fatalf("past the window: %+v, %v (hit %v); want revoked, from the database", f, err, hit)
	}
	from := b.rec.mark()
	stall.open()
	// The heartbeat comes back after the notification sent before it.
	from = b.rec.waitFor(t, from, "notify", "f:fam")
	b.rec.waitFor(t, from, "beat", "")
	if !b.cache.usable() {
		t.Fatal("the listener does not vouch again after its heartbeat")
	}
	if f, err := b.Family(t.Context(), "fam"); !refused(f, err) {
		t.Fatalf("after the listener caught up: %+v, %v; want revoked", f, err)
	}
}

// TestCacheFillRace: a notification that arrives while a lookup's query is
// in flight keeps the old row out of the cache.
func TestCacheFillRace(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	a := openReplica(t, dsn, nil)
	inQuery := newGate()
	var armed atomic.Bool
	b := openReplica(t, dsn, &hooks{afterQuery: func(kind, key string) {
		if armed.Load() && kind == "f" && key == "fam" {
			inQuery.pass(context.Background())
		}
	}})
	newFam(t, a.Store, "fam", "alice", t0.Add(time.Hour))

	inQuery.shut()
	armed.Store(true)
	var (
		wg  sync.WaitGroup
		old session.Family
		err error
	)
	wg.Go(func() { old, err = b.Family(context.Background(), "fam") })
	inQuery.awaitBlocked(t) // the query has read the live row
	from := b.rec.mark()
	if err := a.RevokeFamily(t.Context(), "fam", t0.Add(time.Minute), "logout"); err != nil {
		t.Fatal(err)
	}
	b.rec.waitFor(t, from, "notify", "f:fam")
	armed.Store(false)
	inQuery.open()
	wg.Wait()
	if err != nil || old.Revoked() {
		t.Fatalf("the lookup in flight: %+v, %v; want the row it read", old, err)
	}
	if b.cached("fam") {
		t.Fatal("the row read before the revocation was cached after its notification")
	}
	if f, err := b.Family(t.Context(), "fam"); !refused(f, err) {
		t.Fatalf("the next lookup: %+v, %v; want revoked", f, err)
	}
}

// TestCacheFillRaceLate: an invalidation that lands between a fill's check
// of the generation and its store still keeps the old row out.
func TestCacheFillRaceLate(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	a := openReplica(t, dsn, nil)
	inFill := newGate()
	var armed atomic.Bool
	b := openReplica(t, dsn, &hooks{beforeStore: func() {
		if armed.Load() {
			inFill.pass(context.Background())
		}
	}})
	newFam(t, a.Store, "fam", "alice", t0.Add(time.Hour))
	inFill.shut()
	armed.Store(true)
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := b.Family(context.Background(), "fam"); err != nil {
			t.Error(err)
		}
	})
	inFill.awaitBlocked(t)
	from := b.rec.mark()
	if err := a.RevokeFamily(t.Context(), "fam", t0.Add(time.Minute), "logout"); err != nil {
		t.Fatal(err)
	}
	b.rec.waitFor(t, from, "notify", "f:fam")
	armed.Store(false)
	inFill.open()
	wg.Wait()
	if b.cached("fam") {
		t.Fatal("the row read before the revocation was cached after its notification")
	}
	if f, err := b.Family(t.Context(), "fam"); !refused(f, err) {
		t.Fatalf("the next lookup: %+v, %v; want revoked", f, err)
	}
}

// TestCacheFillRaceClient is TestCacheFillRace for a remembered unknown
// client and an AddClient on another replica.
func TestCacheFillRaceClient(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	a := openReplica(t, dsn, nil)
	inQuery := newGate()
	var armed atomic.Bool
	b := openReplica(t, dsn, &hooks{afterQuery: func(kind, key string) {
		if armed.Load() && kind == "c" && key == "app" {
			inQuery.pass(context.Background())
		}
	}})
	inQuery.shut()
	armed.Store(true)
	var (
		wg  sync.WaitGroup
		err error
	)
	wg.Go(func() { _, err = b.Client(context.Background(), "app") })
	inQuery.awaitBlocked(t)
	from := b.rec.mark()
	if err := a.AddClient(t.Context(), registry.Client{ID: "app", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	b.rec.waitFor(t, from, "notify", "c:app")
	armed.Store(false)
	inQuery.open()
	wg.Wait()
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("the lookup in flight: %v; want the ErrNotFound it read", err)
	}
	if c, err := b.Client(t.Context(), "app"); err != nil || c.ID != "app" {
		t.Fatalf("the next lookup: %+v, %v; want the added client", c, err)
	}
}

// TestCacheBounded: the caches never hold more entries than their slots,
// and every answer stays right when entries evict each other.
func TestCacheBounded(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	b := openReplica(t, dsn, nil, withSizes(64, 16))
	pgtest.Exec(t, dsn, `INSERT INTO families (id, subject, created_at, expires_at)
SELECT 'f' || i, 's' || i, $1, $1 FROM generate_series(1, 300) i`, t0)
	for round := range 2 {
		for i := 1; i <= 300; i++ {
			id := fmt.Sprintf("f%d", i)
			f, err := b.Family(t.Context(), id)
			if err != nil || f.ID != id || f.Subject != fmt.Sprintf("s%d", i) {
				t.Fatalf("round %d: Family(%s) = %+v, %v", round, id, f, err)
			}
		}
	}
	if n := b.cache.families.len(); n > 64 || n == 0 {
		t.Fatalf("%d families cached; want 1 to 64", n)
	}
	for i := range 100 {
		if _, err := b.Client(t.Context(), fmt.Sprintf("nobody-%d", i)); !errors.Is(err, registry.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if n := b.cache.clients.len(); n > 16 || n == 0 {
		t.Fatalf("%d clients cached; want 1 to 16", n)
	}
}

// TestCacheClose: Close stops the listener and ends its connection, and no
// lookup answers from memory afterwards.
func TestCacheClose(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	b := openReplica(t, dsn, nil)
	newFam(t, b.Store, "fam", "alice", t0.Add(time.Hour))
	b.warm(t, "fam")
	pid := b.listen.pid.Load()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.listen.done:
	default:
		t.Fatal("the listener goroutine outlived Close")
	}
	if _, err := b.Family(t.Context(), "fam"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Family after Close = %v; want ErrUnavailable", err)
	}
	// The backend goes away when the server has processed the
	// connection's termination; wait for that, boundedly.
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(bound)
	for {
		var n int
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, int(pid)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listener's backend %d is still there %v after Close", pid, bound)
		}
	}
}

// TestWithoutCache: no listener, every lookup a query.
func TestWithoutCache(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	s, err := Open(t.Context(), dsn, WithoutCache())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.cache != nil || s.listen != nil {
		t.Fatal("WithoutCache opened a cache")
	}
	newFam(t, s, "fam", "alice", t0.Add(time.Hour))
	if _, err := s.Family(t.Context(), "fam"); err != nil {
		t.Fatal(err)
	}
}

// TestTable: the two slots of a pair hold two keys that hash alike; a
// third evicts one of them; forget finds a key in either slot; a fill
// that raced an invalidation stores nothing.
func TestTable(t *testing.T) {
	var gen atomic.Uint64
	tab := newTable[int](2) // one pair: every key hashes alike
	tab.fill(&gen, gen.Load(), "a", 1, nil)
	tab.fill(&gen, gen.Load(), "b", 2, nil)
	for k, want := range map[string]int{"a": 1, "b": 2} {
		if v, ok := tab.get(k); !ok || v != want {
			t.Fatalf("get(%s) = %d, %v; want %d", k, v, ok, want)
		}
	}
	tab.fill(&gen, gen.Load(), "c", 3, nil)
	if v, ok := tab.get("c"); !ok || v != 3 || tab.len() != 2 {
		t.Fatalf("get(c) = %d, %v with %d entries", v, ok, tab.len())
	}
	_, aOK := tab.get("a")
	_, bOK := tab.get("b")
	if aOK == bOK {
		t.Fatalf("a cached %v, b cached %v; want exactly one evicted", aOK, bOK)
	}
	gen.Add(1)
	tab.forget("c")
	if _, ok := tab.get("c"); ok {
		t.Fatal("c survived forget")
	}
	// A fill of the same key over itself replaces it in place.
	g := gen.Load()
	tab.fill(&gen, g, "c", 4, nil)
	tab.fill(&gen, g, "c", 5, nil)
	if v, _ := tab.get("c"); v != 5 || tab.len() != 2 {
		t.Fatalf("get(c) = %d with %d entries", v, tab.len())
	}
	// Stale generation: nothing is stored; an invalidation between the
	// check and the store takes the entry out again.
	tab.fill(&gen, g-1, "d", 6, nil)
	tab.fill(&gen, gen.Load(), "e", 7, func() { gen.Add(1); tab.forget("e") })
	for _, k := range []string{"d", "e"} {
		if _, ok := tab.get(k); ok {
			t.Fatalf("%s stored by a stale fill", k)
		}
	}
}
