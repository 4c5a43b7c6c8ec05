package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/registry"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store/storetest"
)

// openClientTest opens a store on a new file, with the client cache on.
func openClientTest(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clients.db")
	s := openTest(t, path)
	t.Cleanup(func() { s.Close() })
	if s.clients == nil {
		t.Fatal("no client cache: the shared-memory file cannot be read")
	}
	return s, path
}

// cachedClient returns the answer the cache holds for id, if the log is
// still in the state at which the registry version was last read; it
// runs no statement.
func cachedClient(s *Store, id string) *clientEntry {
	c := s.clients
	h, ok := c.wal.state()
	if !ok {
		return nil
	}
	st := c.confirmed.Load()
	if st == nil || st.wal != h {
		return nil
	}
	return c.get(st, id)
}

// countReads counts the statements that read a client row.
func countReads(s *Store) *atomic.Int64 {
	var n atomic.Int64
	s.clients.afterRead = func(string) { n.Add(1) }
	return &n
}

// lookup returns the client, or the zero client with found false for
// registry.ErrNotFound; any other error fails the test.
func lookup(t *testing.T, s *Store, id string) (c registry.Client, found bool) {
	t.Helper()
	c, err := s.Client(t.Context(), id)
	if errors.Is(err, registry.ErrNotFound) {
		return registry.Client{}, false
	}
	if err != nil {
		t.Fatalf("Client(%s): %v", id, err)
	}
	return c, true
}

// wantCached looks id up twice and fails unless the second answer comes
// from memory (no row read) and matches want (nil: not found).
func wantCached(t *testing.T, s *Store, id string, want *registry.Client) {
	t.Helper()
	for i := range 2 {
		c, found := lookup(t, s, id)
		switch {
		case want == nil && found:
			t.Fatalf("lookup %d: Client(%s) = %+v, want not found", i, id, c)
		case want != nil && !found:
			t.Fatalf("lookup %d: Client(%s) not found, want %+v", i, id, *want)
		case want != nil && (c.SecretHash != want.SecretHash || !slices.Equal(c.Scopes, want.Scopes) || (c.Scopes == nil) != (want.Scopes == nil)):
			t.Fatalf("lookup %d: Client(%s) = %+v, want %+v", i, id, c, *want)
		}
	}
	if cachedClient(s, id) == nil {
		t.Fatalf("Client(%s) is not answered from memory while nothing commits", id)
	}
}

// TestClientCacheSameStore: the store's own writes are seen by its next
// lookup, answered from memory until then.
func TestClientCacheSameStore(t *testing.T) {
	s, _ := openClientTest(t)
	ctx := t.Context()
	wantCached(t, s, "app", nil)
	app := registry.Client{ID: "app", SecretHash: "hash-1", Scopes: []string{"read"}, CreatedAt: storetest.T0}
	if err := s.AddClient(ctx, app); err != nil {
		t.Fatal(err)
	}
	wantCached(t, s, "app", &app)
	// A new secret (the registry has no update: remove, then add).
	if err := s.RemoveClient(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	wantCached(t, s, "app", nil)
	app.SecretHash, app.Scopes = "hash-2", nil
	if err := s.AddClient(ctx, app); err != nil {
		t.Fatal(err)
	}
	wantCached(t, s, "app", &app)
	if err := s.RemoveClient(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	wantCached(t, s, "app", nil)
}

// TestClientCacheAnswerIsACopy: a caller that changes the scopes of its
// answer changes nothing the next caller sees; nil (any scope) and empty
// (no scope) stay apart.
func TestClientCacheAnswerIsACopy(t *testing.T) {
	s, _ := openClientTest(t)
	anyScope := registry.Client{ID: "any", CreatedAt: storetest.T0}
	none := registry.Client{ID: "none", Scopes: []string{}, CreatedAt: storetest.T0}
	some := registry.Client{ID: "some", Scopes: []string{"read", "write"}, CreatedAt: storetest.T0}
	for _, c := range []registry.Client{anyScope, none, some} {
		if err := s.AddClient(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		wantCached(t, s, c.ID, &c)
	}
	got, _ := lookup(t, s, "some")
	got.Scopes[0] = "admin"
	_ = append(got.Scopes[:1], "admin")
	wantCached(t, s, "some", &some)
}

// TestClientCacheOtherCommits: a commit that changes no client (a login,
// a rotation) costs the next lookup one version read, and no row read.
func TestClientCacheOtherCommits(t *testing.T) {
	s, _ := openClientTest(t)
	app := registry.Client{ID: "app", SecretHash: "h", CreatedAt: storetest.T0}
	if err := s.AddClient(t.Context(), app); err != nil {
		t.Fatal(err)
	}
	wantCached(t, s, "app", &app)
	wantCached(t, s, "public", nil)
	reads := countReads(s)
	for i := range 3 {
		f := session.Family{ID: fmt.Sprint(i), Subject: "alice", CreatedAt: storetest.T0, ExpiresAt: storetest.T0.Add(time.Hour)}
		first := session.RefreshToken{Hash: storetest.Hash(fmt.Sprint("rt-", i)), FamilyID: f.ID, IssuedAt: storetest.T0, ExpiresAt: storetest.T0.Add(time.Hour)}
		if _, err := s.CreateFamilyCapped(t.Context(), f, first, 0, ""); err != nil {
			t.Fatal(err)
		}
		if cachedClient(s, "app") != nil {
			t.Fatal("an answer is taken as current across a commit without reading the registry version")
		}
		wantCached(t, s, "app", &app)
		wantCached(t, s, "public", nil)
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("%d client rows read after commits that changed no client, want 0", n)
	}
}

// TestClientCacheAnotherConnection: a change in plain SQL on a connection
// that bypasses the store is seen by the next lookup.
func TestClientCacheAnotherConnection(t *testing.T) {
	s, path := openClientTest(t)
	app := registry.Client{ID: "app", SecretHash: "h1", CreatedAt: storetest.T0}
	if err := s.AddClient(t.Context(), app); err != nil {
		t.Fatal(err)
	}
	wantCached(t, s, "app", &app)
	wantCached(t, s, "new", nil)
	db := rawDB(t, path)
	if _, err := db.Exec(`UPDATE clients SET secret_hash = 'h2', scopes = '["read"]' WHERE id = 'app'`); err != nil {
		t.Fatal(err)
	}
	app.SecretHash, app.Scopes = "h2", []string{"read"}
	wantCached(t, s, "app", &app)
	if _, err := db.Exec(`INSERT INTO clients (id, secret_hash, created_at) VALUES ('new', 'h3', 1)`); err != nil {
		t.Fatal(err)
	}
	wantCached(t, s, "new", &registry.Client{ID: "new", SecretHash: "h3"})
	if _, err := db.Exec(`DELETE FROM clients WHERE id = 'app'`); err != nil {
		t.Fatal(err)
	}
	wantCached(t, s, "app", nil)
}

// TestClientCacheSecondStore: a change through one store is seen by the
// next lookup of another store on the same file.
func TestClientCacheSecondStore(t *testing.T) {
	s1, path := openClientTest(t)
	s2 := openTest(t, path)
	defer s2.Close()
	app := registry.Client{ID: "app", SecretHash: "h1", CreatedAt: storetest.T0}
	wantCached(t, s2, "app", nil)
	if err := s1.AddClient(t.Context(), app); err != nil {
		t.Fatal(err)
	}
	wantCached(t, s2, "app", &app)
	if err := s1.RemoveClient(t.Context(), "app"); err != nil {
		t.Fatal(err)
	}
	wantCached(t, s2, "app", nil)
}

// TestClientCacheAnotherProcess: a change committed by another process on
// the same file is seen by the next lookup.
func TestClientCacheAnotherProcess(t *testing.T) {
	s, path := openClientTest(t)
	app := registry.Client{ID: "app", SecretHash: "h1", CreatedAt: storetest.T0}
	if err := s.AddClient(t.Context(), app); err != nil {
		t.Fatal(err)
	}
	wantCached(t, s, "app", &app)
	c := startChild(t, "client", path, 1)
	release([]*child{c})
	if got := c.line(t); got != "replaced" {
		t.Fatalf("child: %s", got)
	}
	app.SecretHash = "from child 1"
	wantCached(t, s, "app", &app)
}

// TestClientCacheFillRace: a lookup that read the row before a change
// committed, and stores its answer after, must not leave the old row for
// the next lookup.
func TestClientCacheFillRace(t *testing.T) {
	for _, via := range []string{"store", "sql"} {
		t.Run(via, func(t *testing.T) {
			s, path := openClientTest(t)
			db := rawDB(t, path)
			ctx := t.Context()
			app := registry.Client{ID: "app", SecretHash: "old", CreatedAt: storetest.T0}
			if err := s.AddClient(ctx, app); err != nil {
				t.Fatal(err)
			}
			read, resume := make(chan struct{}), make(chan struct{})
			var once sync.Once
			s.clients.afterRead = func(id string) {
				once.Do(func() {
					close(read)
					<-resume
				})
			}
			done := make(chan registry.Client)
			go func() {
				c, _ := s.Client(ctx, "app")
				done <- c
			}()
			<-read // the racing lookup holds the old row
			switch via {
			case "store":
				if err := s.RemoveClient(ctx, "app"); err != nil {
					t.Fatal(err)
				}
				app.SecretHash = "new"
				if err := s.AddClient(ctx, app); err != nil {
					t.Fatal(err)
				}
			case "sql":
				if _, err := db.Exec(`UPDATE clients SET secret_hash = 'new' WHERE id = 'app'`); err != nil {
					t.Fatal(err)
				}
				app.SecretHash = "new"
			}
			close(resume)
			if c := <-done; c.SecretHash != "old" {
				t.Fatalf("the racing lookup read %q, want the row of before the change", c.SecretHash)
			}
			if e := s.clients.get(s.clients.confirmed.Load(), "app"); e != nil && e.client.SecretHash == "old" {
				t.Error("the racing lookup stored the old row")
			}
			wantCached(t, s, "app", &app)
		})
	}
}

// TestClientCacheConfirmRace: a commit that lands between the header read
// and the version read of a lookup leaves no answer that the next lookup
// takes for current.
func TestClientCacheConfirmRace(t *testing.T) {
	s, path := openClientTest(t)
	db := rawDB(t, path)
	ctx := t.Context()
	app := registry.Client{ID: "app", SecretHash: "old", CreatedAt: storetest.T0}
	if err := s.AddClient(ctx, app); err != nil {
		t.Fatal(err)
	}
	wantCached(t, s, "app", &app)
	// A commit that changes no client, so that the next lookup reads the
	// version; the change lands while it is between header and version.
	if _, err := db.Exec(`INSERT INTO secrets (name, value, created_at) VALUES ('x', x'00', 1)`); err != nil {
		t.Fatal(err)
	}
	s.clients.beforeVersion = func() {
		s.clients.beforeVersion = nil
		if _, err := db.Exec(`UPDATE clients SET secret_hash = 'new' WHERE id = 'app'`); err != nil {
			t.Error(err)
		}
	}
	if c, _ := lookup(t, s, "app"); c.SecretHash != "new" {
		t.Fatalf("a lookup that read the new version answered %q", c.SecretHash)
	}
	app.SecretHash = "new"
	wantCached(t, s, "app", &app)
}

// TestClientCacheLinearizable: lookups from many goroutines while another
// connection changes the secret over and over; a lookup that starts after
// a change returned never sees an older secret.
func TestClientCacheLinearizable(t *testing.T) {
	s, path := openClientTest(t)
	db := rawDB(t, path)
	if err := s.AddClient(t.Context(), registry.Client{ID: "app", SecretHash: "0", CreatedAt: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	const changes = 200
	var committed atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				before := committed.Load()
				c, err := s.Client(context.Background(), "app")
				if err != nil {
					t.Error(err)
					return
				}
				n, err := strconv.ParseInt(c.SecretHash, 10, 64)
				if err != nil {
					t.Error(err)
					return
				}
				if n < before {
					t.Errorf("a lookup that started after change %d answered change %d", before, n)
					return
				}
			}
		})
	}
	for i := int64(1); i <= changes; i++ {
		if _, err := db.Exec(`UPDATE clients SET secret_hash = ? WHERE id = 'app'`, strconv.FormatInt(i, 10)); err != nil {
			t.Fatal(err)
		}
		committed.Store(i)
		// A commit that changes no client between two that do.
		if _, err := db.Exec(`INSERT OR REPLACE INTO secrets (name, value, created_at) VALUES ('x', x'00', ?)`, i); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

// TestClientCacheFlood: lookups of random client_ids (public clients an
// attacker makes up) fill a fixed number of slots, never evict a
// registered client, and do not push out a not-found answer that is in
// use (a real public client looked up now and then).
func TestClientCacheFlood(t *testing.T) {
	s, _ := openClientTest(t)
	app := registry.Client{ID: "app", SecretHash: "h", CreatedAt: storetest.T0}
	if err := s.AddClient(t.Context(), app); err != nil {
		t.Fatal(err)
	}
	wantCached(t, s, "app", &app)
	wantCached(t, s, "web", nil)
	const flood, every = 20 * clientCacheSlots, 64
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	heap0 := heap()
	missed := 0
	for i := range flood {
		// Made-up ids as long as a client_id may be, the most memory each.
		id := fmt.Sprintf("random-%d-", i)
		lookup(t, s, id+strings.Repeat("x", registry.MaxIDLen-len(id)))
		if i%every == 0 {
			if cachedClient(s, "web") == nil {
				missed++
			}
			lookup(t, s, "web")
		}
	}
	grown := int64(heap()) - int64(heap0)
	if cachedClient(s, "app") == nil {
		t.Error("a flood of unregistered client_ids evicted a registered client")
	}
	// With one slot per answer, the real public client is pushed out when
	// a made-up id lands in its slot between two of its lookups (64/1024 =
	// 6%); with a second chance only when two do (0.2%).
	if max := flood / every / 50; missed > max {
		t.Errorf("the public client in use missed %d times in %d lookups during the flood, want at most %d", missed, flood/every, max)
	}
	var n int
	for _, slots := range [][]atomic.Pointer[clientEntry]{s.clients.found, s.clients.missing} {
		for i := range slots {
			if slots[i].Load() != nil {
				n++
			}
		}
	}
	// Remembering every made-up id would hold flood × MaxIDLen = 5 MiB of
	// ids alone; the slots hold at most 1024 of them, 0.25 MiB.
	if limit := int64(flood * registry.MaxIDLen / 4); grown > limit {
		t.Errorf("the heap grew by %d bytes during a flood of %d made-up ids, want at most %d", grown, flood, limit)
	}
	t.Logf("%d answers remembered and the heap %+d bytes after %d made-up ids of %d bytes; the public client in use missed %d of %d lookups",
		n, grown, flood, registry.MaxIDLen, missed, flood/every)
	// An id too long for the registry is answered, and not remembered.
	long := string(make([]byte, registry.MaxIDLen+1))
	for range 2 {
		if _, found := lookup(t, s, long); found {
			t.Fatal("found a client with an overlong id")
		}
	}
	if cachedClient(s, long) != nil {
		t.Error("a not-found answer for an id longer than registry.MaxIDLen is remembered")
	}
}

// TestClientCacheNoShm: when the shared-memory file cannot be read, there
// is no cache and every lookup reads the registry.
func TestClientCacheNoShm(t *testing.T) {
	if newClientCache(nil, nil) != nil {
		t.Error("a client cache without a header reader")
	}
	if w := openWALIndex(filepath.Join(t.TempDir(), "none.db")); w != nil {
		t.Error("a header reader on a database with no shared-memory file")
	}
	s, path := openClientTest(t)
	app := registry.Client{ID: "app", SecretHash: "h1", CreatedAt: storetest.T0}
	if err := s.AddClient(t.Context(), app); err != nil {
		t.Fatal(err)
	}
	wantCached(t, s, "app", &app)
	// The file becomes unreadable to the cache: its reads fail from now on.
	s.clients.wal.close()
	reads := countReads(s)
	db := rawDB(t, path)
	for i := range 3 {
		secret := fmt.Sprint("changed-", i)
		if _, err := db.Exec(`UPDATE clients SET secret_hash = ? WHERE id = 'app'`, secret); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if c, _ := lookup(t, s, "app"); c.SecretHash != secret {
				t.Fatalf("Client = %+v, want secret %q", c, secret)
			}
		}
	}
	if n := reads.Load(); n != 6 {
		t.Errorf("%d row reads for 6 lookups without the shared-memory file, want 6", n)
	}
}
