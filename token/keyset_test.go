package token

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// concurrentLookups has n callers look up kid at once while release holds
// the shared load back: it returns once every caller waits for the load,
// releases it, and returns the callers' errors. A caller that returns
// before the load is released did not share it, and fails the test.
func concurrentLookups(t *testing.T, c *cachedKeys, n int, kid string, release func()) []error {
	t.Helper()
	joined := waitHook(c, n)
	errs := make([]error, n)
	returned := make(chan int, n)
	for i := range n {
		go func() {
			_, errs[i] = c.publicKey(context.Background(), kid)
			returned <- i
		}()
	}
	for waiting := 0; waiting < n; {
		select {
		case <-joined:
			waiting++
		case i := <-returned:
			release()
			for range n - 1 {
				<-returned
			}
			t.Fatalf("caller %d returned (%v) while the load was held back", i, errs[i])
		}
	}
	release()
	for range n {
		<-returned
	}
	return errs
}

// waitHook makes a key set report each caller that starts waiting for a
// shared load, so that tests know when every caller has joined it.
func waitHook(c *cachedKeys, n int) <-chan struct{} {
	ch := make(chan struct{}, n)
	c.testHookWait = func() { ch <- struct{}{} }
	return ch
}

func TestStoreKeySetUnknownKidIsRateLimited(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.ks.reads.Store(0)
	if _, err := f.keys.PublicKey(ctx, f.key.ID); err != nil {
		t.Fatal(err)
	}
	if r := f.ks.reads.Load(); r != 1 {
		t.Fatalf("reads = %d, want 1", r)
	}
	f.ks.reads.Store(0)

	f.clock.Advance(time.Second)
	if _, err := f.keys.PublicKey(ctx, "nope"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("unknown kid: %v", err)
	}
	if r := f.ks.reads.Load(); r != 1 {
		t.Fatalf("unknown kid: reads = %d, want 1", r)
	}
	// More unknown kids within the second: no store access.
	for i := range 10 {
		f.clock.Advance(50 * time.Millisecond)
		if _, err := f.keys.PublicKey(ctx, "nope"+string(rune('a'+i))); !errors.Is(err, ErrKeyNotFound) {
			t.Fatal(err)
		}
	}
	if r := f.ks.reads.Load(); r != 1 {
		t.Fatalf("within the second: reads = %d, want 1", r)
	}
	// A key added meanwhile is found once the second has passed.
	newer, err := GenerateKey(f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ks.AddSigningKey(ctx, newer); err != nil {
		t.Fatal(err)
	}
	if _, err := f.keys.PublicKey(ctx, newer.ID); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("new kid within the second: %v, want not found yet", err)
	}
	f.clock.Advance(500 * time.Millisecond)
	if k, err := f.keys.PublicKey(ctx, newer.ID); err != nil || k.ID != newer.ID {
		t.Fatalf("new kid after a second: %v, %v", k, err)
	}
	if r := f.ks.reads.Load(); r != 2 {
		t.Fatalf("reads = %d, want 2", r)
	}
	// Known kids cost nothing.
	for range 100 {
		if _, err := f.keys.PublicKey(ctx, f.key.ID); err != nil {
			t.Fatal(err)
		}
	}
	if r := f.ks.reads.Load(); r != 2 {
		t.Fatalf("known kids: reads = %d, want 2", r)
	}
}

// TestStoreKeySetSingleFlight has many callers ask for keys at once while
// the store is slow: they share one read.
func TestStoreKeySetSingleFlight(t *testing.T) {
	for _, tt := range []struct {
		name string
		prep func(f *fixture) // leaves the set needing a load
	}{
		{"first use", func(*fixture) {}},
		{"stale", func(f *fixture) {
			if _, err := f.keys.PublicKey(context.Background(), f.key.ID); err != nil {
				t.Fatal(err)
			}
			f.clock.Advance(DefaultStoreMaxAge)
		}},
		{"unknown kid", func(f *fixture) {
			if _, err := f.keys.PublicKey(context.Background(), "x"); !errors.Is(err, ErrKeyNotFound) {
				t.Fatal(err)
			}
			f.clock.Advance(time.Second)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.prep(f)
			f.ks.reads.Store(0)
			f.ks.gate = make(chan struct{})

			kid := f.key.ID
			if tt.name == "unknown kid" {
				newer, err := GenerateKey(f.clock.Now())
				if err != nil {
					t.Fatal(err)
				}
				if err := f.ks.AddSigningKey(context.Background(), newer); err != nil {
					t.Fatal(err)
				}
				kid = newer.ID
			}
			errs := concurrentLookups(t, &f.keys.c, 16, kid, func() { close(f.ks.gate) })
			if r := f.ks.reads.Load(); r != 1 {
				t.Errorf("store read %d times, want 1", r)
			}
			for i, err := range errs {
				if err != nil {
					t.Errorf("caller %d: %v", i, err)
				}
			}
		})
	}
}

// TestStoreKeySetCallerGivesUp: a caller whose context ends stops waiting;
// the shared load goes on for the others.
func TestStoreKeySetCallerGivesUp(t *testing.T) {
	f := newFixture(t)
	joined := waitHook(&f.keys.c, 2)
	f.ks.gate = make(chan struct{})
	f.ks.reads.Store(0)

	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error)
	go func() {
		_, err := f.keys.PublicKey(ctx, f.key.ID)
		gaveUp <- err
	}()
	<-joined
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %v, want context.Canceled", err)
	}

	got := make(chan error, 1)
	go func() {
		_, err := f.keys.PublicKey(context.Background(), f.key.ID)
		got <- err
	}()
	select {
	case <-joined:
	case err := <-got:
		close(f.ks.gate)
		t.Fatalf("second caller returned (%v) without joining the load", err)
	}
	close(f.ks.gate)
	if err := <-got; err != nil {
		t.Errorf("second caller: %v", err)
	}
	if r := f.ks.reads.Load(); r != 1 {
		t.Errorf("store read %d times, want 1", r)
	}
}

// TestStoreKeySetStoreDown: while the store fails, the keys last read go on
// verifying, and the store is retried at most once a second.
func TestStoreKeySetStoreDown(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	raw := f.mint(t, f.claims())
	if _, err := f.v.Verify(ctx, raw); err != nil {
		t.Fatal(err)
	}
	down := errors.New("store down")
	f.ks.setFail(down)
	f.ks.reads.Store(0)
	f.clock.Advance(DefaultStoreMaxAge)
	for range 5 {
		if _, err := f.v.Verify(ctx, raw); err != nil {
			t.Fatalf("Verify with store down: %v", err)
		}
	}
	if r := f.ks.reads.Load(); r != 1 {
		t.Errorf("store read %d times, want 1", r)
	}
	// An unknown kid gets the store's error, not "not found".
	if _, err := f.keys.PublicKey(ctx, "other"); !errors.Is(err, down) {
		t.Errorf("unknown kid with store down: %v", err)
	}
	// A fresh key set has nothing to fall back on.
	if _, err := NewStoreKeySet(f.ks).PublicKey(ctx, f.key.ID); !errors.Is(err, down) {
		t.Errorf("fresh key set with store down: %v", err)
	}
	f.ks.setFail(nil)
	f.clock.Advance(time.Second)
	if _, err := f.v.Verify(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if r := f.ks.reads.Load(); r != 3 { // one by the fresh set
		t.Errorf("store read %d times, want 3", r)
	}
}

// TestReloadBeatsOlderLoad: keys read by a Reload are not overwritten by a
// shared load that started before it and finished after it.
func TestReloadBeatsOlderLoad(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	c := &cachedKeys{cfg: newKeySetConfig(time.Hour, []KeySetOption{WithClock(clock.Now)})}
	loads := make(chan chan map[string]PublicKey)
	c.load = func(context.Context) (map[string]PublicKey, error) {
		answer := make(chan map[string]PublicKey)
		loads <- answer
		return <-answer, nil
	}
	old := map[string]PublicKey{"a": {ID: "a", Algorithm: AlgEdDSA}}

	lookup := make(chan error)
	go func() {
		_, err := c.publicKey(ctx, "a")
		lookup <- err
	}()
	first := <-loads // the shared load, started by the lookup

	reloaded := make(chan error)
	go func() { reloaded <- c.reload(ctx) }()
	second := <-loads
	second <- map[string]PublicKey{} // "a" was deleted in between
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	first <- old
	if err := <-lookup; !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("lookup = %v, want not found", err)
	}
	if _, ok := c.cache.Load().keys["a"]; ok {
		t.Error("the older load overwrote the newer one")
	}
}

// jwksServer serves the JWKS of ks and counts the requests.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64
	gate chan struct{} // when non-nil, requests wait for it to close
}

func newJWKSServer(t *testing.T, ks KeyStore) *jwksServer {
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if s.gate != nil {
			<-s.gate
		}
		b, err := JWKS(r.Context(), ks)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestRemoteKeySetVerifies(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	srv := newJWKSServer(t, f.ks)
	remote := NewRemoteKeySet(ctx, srv.URL, srv.Client(), WithClock(f.clock.Now))
	v, err := NewVerifier(remote, VerifierConfig{Issuer: testIssuer, Audience: testAudience, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	old := f.mint(t, f.claims())
	for range 3 {
		if _, err := v.Verify(ctx, old); err != nil {
			t.Fatal(err)
		}
	}
	if h := srv.hits.Load(); h != 1 {
		t.Errorf("fetched %d times, want 1", h)
	}

	// Rotation: a new key signs; the resource server fetches again on
	// first sight of its kid.
	f.clock.Advance(time.Second)
	newer, err := GenerateKey(f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ks.AddSigningKey(ctx, newer); err != nil {
		t.Fatal(err)
	}
	if err := f.iss.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, f.mint(t, f.claims())); err != nil {
		t.Fatal(err)
	}
	if h := srv.hits.Load(); h != 2 {
		t.Errorf("fetched %d times, want 2", h)
	}

	// The old key is deleted: once the keys are older than the maximum
	// age, tokens it signed stop verifying.
	if err := f.ks.DeleteSigningKey(ctx, f.key.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, old); err != nil {
		t.Errorf("within max age: %v", err)
	}
	f.clock.Advance(DefaultRemoteMaxAge)
	if _, err := v.Verify(ctx, old); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("after max age: %v, want unknown kid", err)
	}
}

// TestRemoteKeySetSingleFlight: concurrent callers share one fetch.
func TestRemoteKeySetSingleFlight(t *testing.T) {
	f := newFixture(t)
	srv := newJWKSServer(t, f.ks)
	srv.gate = make(chan struct{})
	remote := NewRemoteKeySet(context.Background(), srv.URL, srv.Client())
	errs := concurrentLookups(t, &remote.c, 16, f.key.ID, func() { close(srv.gate) })
	if h := srv.hits.Load(); h != 1 {
		t.Errorf("fetched %d times, want 1", h)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
}

func TestRemoteKeySetUnknownKidIsRateLimited(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	srv := newJWKSServer(t, f.ks)
	remote := NewRemoteKeySet(ctx, srv.URL, srv.Client(), WithClock(f.clock.Now))
	for i := range 20 {
		if _, err := remote.PublicKey(ctx, "unknown"); !errors.Is(err, ErrKeyNotFound) {
			t.Fatalf("call %d: %v", i, err)
		}
		f.clock.Advance(100 * time.Millisecond) // 20 calls over 2 seconds
	}
	if h := srv.hits.Load(); h != 2 {
		t.Errorf("fetched %d times in 2s, want 2", h)
	}
	if err := remote.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if h := srv.hits.Load(); h != 3 {
		t.Errorf("Reload did not fetch: %d", h)
	}
}

func TestRemoteKeySetDocuments(t *testing.T) {
	good, err := GenerateKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	x := base64.RawURLEncoding.EncodeToString(good.PrivateKey[32:])
	okp := func(kid, extra string) string {
		return `{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"` + kid + `"` + extra + `}`
	}
	tests := []struct {
		name   string
		status int
		body   string
		kids   []string // keys found; nil means the fetch fails
	}{
		{"ours", 200, `{"keys":[` + okp("a", `,"alg":"EdDSA","use":"sig"`) + `]}`, []string{"a"}},
		{"others skipped", 200, `{"keys":[
			{"kty":"RSA","n":"sXch","e":"AQAB","kid":"rsa"},
			{"kty":"OKP","crv":"X25519","x":"` + x + `","kid":"x25519"},
			{"kty":"EC","crv":"P-256","x":1,"kid":"odd"},
			` + okp("enc", `,"use":"enc"`) + `,
			` + okp("es", `,"alg":"ES256"`) + `,
			` + okp("b", "") + `]}`, []string{"b"}},
		{"empty set", 200, `{"keys":[]}`, []string{}},
		{"server error", 500, `{"keys":[]}`, nil},
		{"not JSON", 200, `<html>`, nil},
		{"no keys member", 200, `{}`, nil},
		{"short x", 200, `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"a"}]}`, nil},
		{"no kid", 200, `{"keys":[` + okp("", "") + `]}`, nil},
		{"duplicate kid", 200, `{"keys":[` + okp("a", "") + `,` + okp("a", "") + `]}`, nil},
		{"too big", 200, `{"keys":[],"pad":"` + strings.Repeat("x", maxJWKSSize) + `"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			remote := NewRemoteKeySet(context.Background(), srv.URL, srv.Client())
			err := remote.Reload(context.Background())
			if tt.kids == nil {
				if err == nil {
					t.Fatal("Reload succeeded")
				}
				if _, err := remote.PublicKey(context.Background(), "a"); err == nil || errors.Is(err, ErrKeyNotFound) {
					t.Errorf("PublicKey = %v, want the fetch error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			keys := remote.c.cache.Load().keys
			if len(keys) != len(tt.kids) {
				t.Errorf("keys = %v, want %v", keys, tt.kids)
			}
			for _, kid := range tt.kids {
				k, err := remote.PublicKey(context.Background(), kid)
				if err != nil || k.Algorithm != AlgEdDSA || string(k.Key) != string(good.PrivateKey[32:]) {
					t.Errorf("PublicKey(%q) = %v, %v", kid, k, err)
				}
			}
		})
	}
}

// TestRemoteKeySetContext: fetches run under the set's context, not the
// caller's.
func TestRemoteKeySetContext(t *testing.T) {
	f := newFixture(t)
	srv := newJWKSServer(t, f.ks)
	setCtx, cancel := context.WithCancel(context.Background())
	remote := NewRemoteKeySet(setCtx, srv.URL, srv.Client())

	callerCtx, callerCancel := context.WithCancel(context.Background())
	callerCancel()
	if _, err := remote.PublicKey(callerCtx, f.key.ID); err == nil {
		// The fetch may win the race with the cancelled caller; both
		// outcomes are fine as long as nothing hangs.
		t.Log("fetch finished first")
	}
	cancel()
	fresh := NewRemoteKeySet(setCtx, srv.URL, srv.Client())
	if _, err := fresh.PublicKey(context.Background(), f.key.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("with the set's context cancelled: %v", err)
	}
}

func TestJWKSDocument(t *testing.T) {
	ctx := context.Background()
	ks := &memKeyStore{}
	var want []Key
	for i := range 2 {
		k, err := GenerateKey(time.Unix(int64(1000+i), 0))
		if err != nil {
			t.Fatal(err)
		}
		if err := ks.AddSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		want = append([]Key{k}, want...) // newest first
	}
	b, err := JWKS(ctx, ks)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != len(want) {
		t.Fatalf("JWKS = %s", b)
	}
	for i, k := range want {
		got := doc.Keys[i]
		wantKey := map[string]string{
			"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": k.ID,
			"x": base64.RawURLEncoding.EncodeToString(k.PrivateKey[32:]),
		}
		if len(got) != len(wantKey) {
			t.Errorf("key %d = %v, want %v", i, got, wantKey)
		}
		for name, v := range wantKey {
			if got[name] != v {
				t.Errorf("key %d: %s = %q, want %q", i, name, got[name], v)
			}
		}
	}
	empty, err := JWKS(ctx, &memKeyStore{})
	if err != nil || string(empty) != `{"keys":[]}` {
		t.Errorf("JWKS of no keys = %s, %v", empty, err)
	}
}
