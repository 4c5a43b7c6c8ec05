package postgres_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/store/postgres"
	"github.com/silentrefresh/silentrefresh/store/postgres/pgtest"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// open returns a store on a fresh schema, closed at the end of the test.
func open(t *testing.T) (*postgres.Store, string) {
	t.Helper()
	dsn := pgtest.NewDSN(t)
	return openDSN(t, dsn), dsn
}

func openDSN(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var base = time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// newFamily stores a family with its first token and returns both.
func newFamily(t *testing.T, s *postgres.Store, id string) (session.Family, session.RefreshToken) {
	t.Helper()
	f := session.Family{ID: id, Subject: "alice", ClientID: "web", CreatedAt: base, ExpiresAt: base.Add(720 * time.Hour)}
	tok := session.RefreshToken{Hash: hashOf(id + "/0"), FamilyID: id, IssuedAt: base, ExpiresAt: base.Add(168 * time.Hour)}
	if _, err := s.CreateFamilyCapped(t.Context(), f, tok, 0, ""); err != nil {
		t.Fatalf("CreateFamily: %v", err)
	}
	return f, tok
}

// consume is a decide function that consumes an unconsumed token and
// changes nothing otherwise.
func consume(at time.Time, applied *atomic.Int32) func(session.Chain) (session.Change, error) {
	return func(c session.Chain) (session.Change, error) {
		if c.Token.Consumed() {
			return session.Change{}, nil
		}
		if applied != nil {
			applied.Add(1)
		}
		next := session.RefreshToken{
			Hash:       hashOf(fmt.Sprintf("%s/%d", c.Family.ID, c.Token.Generation+1)),
			FamilyID:   c.Family.ID,
			Generation: c.Token.Generation + 1,
			IssuedAt:   at,
			ExpiresAt:  at.Add(time.Hour),
		}
		return session.Change{Consume: &next, ConsumedAt: at}, nil
	}
}

func TestFamilyRoundTrip(t *testing.T) {
	s, _ := open(t)
	f, tok := newFamily(t, s, "fam-1")
	got, err := s.Family(t.Context(), f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got != f {
		t.Errorf("Family = %+v, want %+v", got, f)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt location = %v, want UTC", got.CreatedAt.Location())
	}
	toks, err := s.FamilyTokens(t.Context(), f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 1 || !bytes.Equal(toks[0].Hash, tok.Hash) || !toks[0].IssuedAt.Equal(tok.IssuedAt) || toks[0].Consumed() {
		t.Errorf("FamilyTokens = %+v", toks)
	}
	if _, err := s.Family(t.Context(), "nope"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Family(unknown) = %v, want ErrNotFound", err)
	}
}

func TestExchange(t *testing.T) {
	s, _ := open(t)
	f, tok := newFamily(t, s, "fam-x")
	at := base.Add(time.Minute)

	if err := s.Exchange(t.Context(), tok.Hash, consume(at, nil)); err != nil {
		t.Fatal(err)
	}
	var chain session.Chain
	if err := s.Exchange(t.Context(), tok.Hash, func(c session.Chain) (session.Change, error) {
		chain = c
		return session.Change{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if chain.Family != f {
		t.Errorf("chain family = %+v", chain.Family)
	}
	if !chain.Token.ConsumedAt.Equal(at) || chain.Successor == nil ||
		!bytes.Equal(chain.Token.SuccessorHash, chain.Successor.Hash) ||
		chain.Successor.Generation != 1 || chain.Successor.Consumed() || chain.Successor.FamilyID != f.ID {
		t.Errorf("chain after consume = %+v, successor %+v", chain.Token, chain.Successor)
	}

	t.Run("decide error is returned unchanged and writes nothing", func(t *testing.T) {
		want := errors.New("no")
		err := s.Exchange(t.Context(), chain.Successor.Hash, func(c session.Chain) (session.Change, error) {
			return session.Change{Revoke: true, RevokeAt: at, RevokeReason: "x"}, want
		})
		if err != want {
			t.Errorf("Exchange = %v, want the decide error itself", err)
		}
		if got, _ := s.Family(t.Context(), f.ID); got.Revoked() {
			t.Errorf("family revoked by a failed decide")
		}
	})
	t.Run("unknown hash", func(t *testing.T) {
		called := false
		err := s.Exchange(t.Context(), hashOf("unknown"), func(session.Chain) (session.Change, error) {
			called = true
			return session.Change{}, nil
		})
		if !errors.Is(err, session.ErrNotFound) || called {
			t.Errorf("Exchange(unknown) = %v, decide called %v", err, called)
		}
	})
	t.Run("revoke in exchange keeps the first revocation", func(t *testing.T) {
		for _, reason := range []string{"reused", "later"} {
			if err := s.Exchange(t.Context(), tok.Hash, func(session.Chain) (session.Change, error) {
				return session.Change{Revoke: true, RevokeAt: at, RevokeReason: reason}, nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := s.Family(t.Context(), f.ID)
		if got.RevokeReason != "reused" || !got.RevokedAt.Equal(at) {
			t.Errorf("family = %+v", got)
		}
	})
}

// TestExchangeConcurrent presents one token from many goroutines, on two
// separate pools (two replicas): exactly one consumes it, and every other
// call sees the consumed state with the same successor.
func TestExchangeConcurrent(t *testing.T) {
	s1, dsn := open(t)
	s2 := openDSN(t, dsn)
	_, tok := newFamily(t, s1, "fam-c")
	var applied atomic.Int32
	var mu sync.Mutex
	successors := map[string]int{}
	var wg sync.WaitGroup
	const n = 32
	for i := range n {
		st := s1
		if i%2 == 1 {
			st = s2
		}
		wg.Go(func() {
			decide := consume(base.Add(time.Second), &applied)
			err := st.Exchange(t.Context(), tok.Hash, func(c session.Chain) (session.Change, error) {
				if c.Token.Consumed() {
					mu.Lock()
					successors[string(c.Successor.Hash)]++
					mu.Unlock()
				}
				return decide(c)
			})
			if err != nil {
				t.Errorf("Exchange: %v", err)
			}
		})
	}
	wg.Wait()
	if applied.Load() != 1 {
		t.Errorf("%d exchanges consumed the token, want 1", applied.Load())
	}
	if len(successors) != 1 || successors[string(hashOf("fam-c/1"))] != n-1 {
		t.Errorf("successors seen = %v", successors)
	}
	toks, _ := s1.FamilyTokens(t.Context(), "fam-c")
	if len(toks) != 2 {
		t.Errorf("family has %d tokens, want 2", len(toks))
	}
}

// TestRevokeDuringExchange: a revocation issued while an exchange holds the
// family lock waits for it, and the exchange's own revocation stays first.
func TestRevokeWaitsForExchange(t *testing.T) {
	s, dsn := open(t)
	f, tok := newFamily(t, s, "fam-r")
	inside := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Exchange(t.Context(), tok.Hash, func(session.Chain) (session.Change, error) {
			close(inside)
			<-release
			return session.Change{Revoke: true, RevokeAt: base, RevokeReason: "reused"}, nil
		})
	}()
	<-inside
	revoked := make(chan error, 1)
	go func() { revoked <- s.RevokeFamily(t.Context(), f.ID, base.Add(time.Hour), "logout") }()
	waitForLockWait(t, dsn, "%UPDATE families%")
	select {
	case err := <-revoked:
		t.Fatalf("RevokeFamily returned (%v) while the exchange held the family", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-revoked; err != nil {
		t.Fatal(err)
	}
	got, _ := s.Family(t.Context(), f.ID)
	if got.RevokeReason != "reused" {
		t.Errorf("revoke reason = %q, want the exchange's", got.RevokeReason)
	}
	if err := s.RevokeFamily(t.Context(), "nope", base, "x"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("RevokeFamily(unknown) = %v", err)
	}
}

func TestDeleteExpired(t *testing.T) {
	s, _ := open(t)
	newFamily(t, s, "old")
	f := session.Family{ID: "new", Subject: "bob", CreatedAt: base, ExpiresAt: base.Add(10000 * time.Hour)}
	if _, err := s.CreateFamilyCapped(t.Context(), f, session.RefreshToken{Hash: hashOf("new"), FamilyID: "new", IssuedAt: base, ExpiresAt: base.Add(time.Hour)}, 0, ""); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteExpired(t.Context(), base.Add(1000*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v; want 1", n, err)
	}
	if toks, _ := s.FamilyTokens(t.Context(), "old"); len(toks) != 0 {
		t.Errorf("tokens of a deleted family remain: %d", len(toks))
	}
	if _, err := s.Family(t.Context(), "new"); err != nil {
		t.Errorf("live family deleted: %v", err)
	}
}

func TestSecretsKeysUsers(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()

	var wg sync.WaitGroup
	got := make([][]byte, 16)
	for i := range got {
		wg.Go(func() {
			v, err := s.LoadOrStoreSecret(ctx, "rotation", []byte{byte(i)})
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	for _, v := range got {
		if !bytes.Equal(v, got[0]) {
			t.Fatalf("LoadOrStoreSecret returned different secrets: %v", got)
		}
	}

	for i, id := range []string{"k1", "k2"} {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		if err := s.AddSigningKey(ctx, token.Key{ID: id, Algorithm: token.AlgEdDSA, PrivateKey: priv, CreatedAt: base.Add(time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := s.SigningKeys(ctx)
	if err != nil || len(keys) != 2 || keys[0].ID != "k2" || len(keys[0].PrivateKey) != ed25519.PrivateKeySize {
		t.Fatalf("SigningKeys = %v, %v", keys, err)
	}
	if err := s.DeleteSigningKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSigningKey(ctx, "k1"); !errors.Is(err, token.ErrKeyNotFound) {
		t.Errorf("DeleteSigningKey(unknown) = %v", err)
	}

	u := user.User{ID: "u1", Username: "alice", PasswordHash: "$argon2id$x", CreatedAt: base}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, user.User{ID: "u2", Username: "alice", PasswordHash: "y", CreatedAt: base}); !errors.Is(err, user.ErrExists) {
		t.Errorf("duplicate CreateUser = %v, want ErrExists", err)
	}
	if got, err := s.UserByName(ctx, "alice"); err != nil || got != u {
		t.Errorf("UserByName = %+v, %v", got, err)
	}
	if _, err := s.UserByName(ctx, "bob"); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("UserByName(unknown) = %v", err)
	}
}

// waitForLockWait waits until a backend runs a statement matching pattern
// (SQL LIKE) and waits for a lock.
func waitForLockWait(t *testing.T, dsn, pattern string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		var n int
		err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE $1 AND pid <> pg_backend_pid()`, pattern).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		runtime.Gosched()
	}
	t.Fatalf("no backend waits for a lock running %s", pattern)
}

// TestConcurrentOpen starts several stores on one empty schema at once, as
// replicas do: the migration lock makes them all succeed.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), dsn)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
}

func TestUnavailable(t *testing.T) {
	ctx := t.Context()
	t.Run("nothing listening", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		start := time.Now()
		_, err = postgres.Open(ctx, "postgres://u:secretpw@"+addr+"/db?sslmode=disable")
		if !errors.Is(err, store.ErrUnavailable) || !postgres.IsUnavailable(err) {
			t.Errorf("Open = %v, want ErrUnavailable", err)
		}
		if err != nil && bytes.Contains([]byte(err.Error()), []byte("secretpw")) {
			t.Errorf("error leaks the password: %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Open took %v", d)
		}
	})
	t.Run("closed store", func(t *testing.T) {
		s, _ := open(t)
		s.Close()
		if _, err := s.Family(ctx, "x"); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Family after Close = %v", err)
		}
	})
	t.Run("outage and recovery", func(t *testing.T) {
		dsn := pgtest.NewDSN(t)
		p := newProxy(t, dsn)
		s := openDSN(t, p.dsn)
		_, tok := newFamily(t, s, "fam-o")
		p.setDown(true)
		err := s.Exchange(ctx, tok.Hash, consume(base, nil))
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Exchange while down = %v, want ErrUnavailable", err)
		}
		if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Ping while down = %v, want ErrUnavailable", err)
		}
		p.setDown(false)
		if err := s.Exchange(ctx, tok.Hash, consume(base, nil)); err != nil {
			t.Errorf("Exchange after recovery = %v", err)
		}
	})
}

// proxy forwards TCP to the PostgreSQL server; setDown(true) cuts every
// connection and refuses new ones, like a database that went away.
type proxy struct {
	dsn      string
	upstream string
	l        net.Listener
	mu       sync.Mutex // guards down and conns
	down     bool
	conns    []net.Conn
}

func newProxy(t *testing.T, dsn string) *proxy {
	t.Helper()
	host, rest, ok := cutHost(dsn)
	if !ok {
		t.Skip("proxy needs a postgres:// DSN with host:port")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{upstream: host, l: l}
	p.dsn = rest(l.Addr().String())
	t.Cleanup(func() { l.Close(); p.setDown(true) })
	go p.serve()
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close() }()
		go func() { _, _ = io.Copy(c, u); c.Close() }()
	}
}

func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// cutHost splits a postgres:// DSN around its host:port.
func cutHost(dsn string) (host string, with func(string) string, ok bool) {
	at := bytes.LastIndexByte([]byte(dsn), '@')
	scheme := bytes.Index([]byte(dsn), []byte("://"))
	if scheme < 0 {
		return "", nil, false
	}
	start := scheme + 3
	if at > start {
		start = at + 1
	}
	end := start
	for end < len(dsn) && dsn[end] != '/' && dsn[end] != '?' {
		end++
	}
	host = dsn[start:end]
	return host, func(h string) string { return dsn[:start] + h + dsn[end:] }, host != ""
}
