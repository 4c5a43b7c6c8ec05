package token

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the key sets; see the KeySetOption functions.
const (
	DefaultStoreMaxAge       = 5 * time.Second
	DefaultRemoteMaxAge      = time.Minute
	DefaultMinReloadInterval = time.Second
	defaultLoadTimeout       = 10 * time.Second
	maxJWKSSize              = 1 << 20
)

// KeySetOption configures a key set made by NewStoreKeySet or
// NewRemoteKeySet.
type KeySetOption func(*keySetConfig)

type keySetConfig struct {
	now         func() time.Time
	maxAge      time.Duration
	minInterval time.Duration
	timeout     time.Duration
}

// WithClock sets the clock a key set reads to tell when its keys are stale
// and when it may load them again. The default is time.Now.
func WithClock(now func() time.Time) KeySetOption {
	return func(c *keySetConfig) {
		if now != nil {
			c.now = now
		}
	}
}

// WithMaxAge sets how long loaded keys are used before they are loaded
// again, which bounds how long a deleted key keeps verifying. The defaults
// are DefaultStoreMaxAge and DefaultRemoteMaxAge.
func WithMaxAge(d time.Duration) KeySetOption {
	return func(c *keySetConfig) {
		if d > 0 {
			c.maxAge = d
		}
	}
}

// WithMinReloadInterval sets the least time between two loads that a
// caller can trigger, by asking for an unknown key ID or by finding the keys
// stale. The default is DefaultMinReloadInterval.
func WithMinReloadInterval(d time.Duration) KeySetOption {
	return func(c *keySetConfig) {
		if d > 0 {
			c.minInterval = d
		}
	}
}

// WithLoadTimeout bounds one load of the keys (default 10s). A load is
// shared by every caller waiting for it, so it does not run under any one
// caller's context.
func WithLoadTimeout(d time.Duration) KeySetOption {
	return func(c *keySetConfig) {
		if d > 0 {
			c.timeout = d
		}
	}
}

func newKeySetConfig(maxAge time.Duration, opts []KeySetOption) keySetConfig {
	c := keySetConfig{
		now:         time.Now,
		maxAge:      maxAge,
		minInterval: DefaultMinReloadInterval,
		timeout:     defaultLoadTimeout,
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// keyCache is one loaded generation of keys. It is never modified once
// published.
type keyCache struct {
	keys   map[string]PublicKey
	loaded time.Time // when the load that read it started
	seq    uint64    // orders loads: a later load never loses to an earlier one
}

// loadCall is one load in flight; done is closed when err is set.
type loadCall struct {
	done chan struct{}
	err  error
}

// cachedKeys is the engine behind StoreKeySet and RemoteKeySet: a cache
// read without locks, and one load at a time, shared by every caller that
// needs it, in the manner of go-oidc's RemoteKeySet.
type cachedKeys struct {
	cfg keySetConfig
	// base, when non-nil, is the parent context of shared loads; when
	// nil, a load runs under the context of the caller that started it,
	// without its cancellation.
	base context.Context
	load func(ctx context.Context) (map[string]PublicKey, error)

	cache atomic.Pointer[keyCache]

	mu        sync.Mutex // guards the fields below
	call      *loadCall  // the load in flight, or nil
	lastStart time.Time  // when the latest load started
	lastErr   error      // the result of the latest load, if no later one has started
	seq       uint64     // sequence number of the latest load started

	// testHookWait, when set by tests, is called by each caller as it
	// starts waiting for a shared load.
	testHookWait func()
}

// publicKey is the lookup every KeySet method comes down to. The hot path
// is one clock read, one atomic load and one map lookup.
func (c *cachedKeys) publicKey(ctx context.Context, kid string) (PublicKey, error) {
	now := c.cfg.now()
	if cur := c.cache.Load(); cur != nil && now.Sub(cur.loaded) < c.cfg.maxAge {
		if k, ok := cur.keys[kid]; ok {
			return k, nil
		}
	}
	// The keys are stale or missing, or kid is unknown: load them again,
	// unless a load started too recently.
	err := c.refresh(ctx, now)
	if cur := c.cache.Load(); cur != nil {
		// After a failed load this serves the keys last read, so that
		// an outage of the store does not stop verification.
		if k, ok := cur.keys[kid]; ok {
			return k, nil
		}
	}
	if err != nil {
		return PublicKey{}, err
	}
	return PublicKey{}, fmt.Errorf("%w: kid %q", ErrKeyNotFound, kid)
}

// refresh joins the load in flight, or starts one unless the latest started
// less than minInterval ago, and waits for it or for ctx.
func (c *cachedKeys) refresh(ctx context.Context, now time.Time) error {
	c.mu.Lock()
	call := c.call
	if call == nil {
		if c.seq > 0 && now.Sub(c.lastStart) < c.cfg.minInterval {
			err := c.lastErr
			c.mu.Unlock()
			return err
		}
		call = c.startLocked(ctx, now)
	}
	c.mu.Unlock()

	if c.testHookWait != nil {
		c.testHookWait()
	}
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return fmt.Errorf("token: waiting for keys: %w", context.Cause(ctx))
	}
}

// startLocked starts a shared load. c.mu must be held.
func (c *cachedKeys) startLocked(ctx context.Context, now time.Time) *loadCall {
	c.seq++
	seq := c.seq
	c.lastStart = now
	call := &loadCall{done: make(chan struct{})}
	c.call = call

	parent := c.base
	if parent == nil {
		parent = context.WithoutCancel(ctx)
	}
	go func() {
		lctx, cancel := context.WithTimeout(parent, c.cfg.timeout)
		keys, err := c.load(lctx)
		cancel()
		if err == nil {
			c.install(&keyCache{keys: keys, loaded: now, seq: seq})
		}
		c.mu.Lock()
		c.call = nil
		if seq == c.seq {
			c.lastErr = err
		}
		c.mu.Unlock()
		call.err = err
		close(call.done)
	}()
	return call
}

// reload loads the keys now, under ctx, whatever is in flight.
func (c *cachedKeys) reload(ctx context.Context) error {
	now := c.cfg.now()
	c.mu.Lock()
	c.seq++
	seq := c.seq
	c.lastStart = now
	c.mu.Unlock()

	keys, err := c.load(ctx)
	if err == nil {
		c.install(&keyCache{keys: keys, loaded: now, seq: seq})
	}
	c.mu.Lock()
	if seq == c.seq {
		c.lastErr = err
	}
	c.mu.Unlock()
	return err
}

// install publishes k unless a later load has already been published.
func (c *cachedKeys) install(k *keyCache) {
	for {
		old := c.cache.Load()
		if old != nil && old.seq > k.seq {
			return
		}
		if c.cache.CompareAndSwap(old, k) {
			return
		}
	}
}

// StoreKeySet is the KeySet of the keys in a KeyStore, cached. It is safe
// for concurrent use.
//
// A known key ID costs no store access. An unknown one makes the set read
// the store again, at most once per minimum reload interval (one read
// shared by every caller waiting for it). The keys are also read again once
// they are older than the maximum age, so a key deleted by another replica
// stops verifying within that time; if that read fails, the keys last read
// go on being used.
type StoreKeySet struct {
	c cachedKeys
}

// NewStoreKeySet returns a KeySet over the keys in ks. The defaults are
// DefaultStoreMaxAge and DefaultMinReloadInterval.
func NewStoreKeySet(ks KeyStore, opts ...KeySetOption) *StoreKeySet {
	s := &StoreKeySet{c: cachedKeys{cfg: newKeySetConfig(DefaultStoreMaxAge, opts)}}
	s.c.load = func(ctx context.Context) (map[string]PublicKey, error) {
		keys, err := ks.SigningKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("token: reading signing keys: %w", err)
		}
		m := make(map[string]PublicKey, len(keys))
		for _, k := range keys {
			if pk, ok := publicKeyOf(k); ok {
				m[pk.ID] = pk
			}
		}
		return m, nil
	}
	return s
}

// PublicKey implements KeySet.
func (s *StoreKeySet) PublicKey(ctx context.Context, kid string) (PublicKey, error) {
	return s.c.publicKey(ctx, kid)
}

// Reload reads the keys from the store now, for example right after this
// replica deleted one.
func (s *StoreKeySet) Reload(ctx context.Context) error {
	return s.c.reload(ctx)
}

// RemoteKeySet is the KeySet of a JWKS document fetched over HTTP, for
// resource servers that verify tokens of an issuer they do not share a
// store with. It is safe for concurrent use.
//
// Only one fetch runs at a time: callers that need the keys wait for it or
// for their own context, whichever ends first, and a caller giving up does
// not cancel the fetch. An unknown key ID triggers a fetch at most once per
// minimum reload interval, and the keys are fetched again once older than
// the maximum age.
type RemoteKeySet struct {
	c      cachedKeys
	url    string
	client *http.Client
}

// NewRemoteKeySet returns a KeySet that fetches the JWK set at jwksURL with
// client (nil: http.DefaultClient). Fetches run under ctx: cancelling it
// stops them. The keys are fetched on first use. The defaults are
// DefaultRemoteMaxAge and DefaultMinReloadInterval. Only Ed25519 signing
// keys are used; other members of the set are ignored.
func NewRemoteKeySet(ctx context.Context, jwksURL string, client *http.Client, opts ...KeySetOption) *RemoteKeySet {
	if client == nil {
		client = http.DefaultClient
	}
	r := &RemoteKeySet{
		c:      cachedKeys{cfg: newKeySetConfig(DefaultRemoteMaxAge, opts), base: ctx},
		url:    jwksURL,
		client: client,
	}
	r.c.load = r.fetch
	return r
}

// PublicKey implements KeySet.
func (r *RemoteKeySet) PublicKey(ctx context.Context, kid string) (PublicKey, error) {
	return r.c.publicKey(ctx, kid)
}

// Reload fetches the keys now, under ctx.
func (r *RemoteKeySet) Reload(ctx context.Context) error {
	return r.c.reload(ctx)
}

func (r *RemoteKeySet) fetch(ctx context.Context) (map[string]PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, fmt.Errorf("token: fetching JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("token: fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("token: fetching JWKS from %s: status %s", r.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("token: fetching JWKS: reading body: %w", err)
	}
	if len(body) > maxJWKSSize {
		return nil, errors.New("token: fetching JWKS: document larger than 1 MiB")
	}
	return parseJWKS(body)
}
