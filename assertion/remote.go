package assertion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults of a RemoteKeySet.
const (
	RemoteMaxAge      = 5 * time.Minute
	RemoteMinInterval = 10 * time.Second
	maxJWKSBytes      = 1 << 20
)

// RemoteKeySet is a KeySet read from a JWKS URL. Keys are kept for
// RemoteMaxAge; an unknown kid loads them again, at most once per
// RemoteMinInterval, so that a key the issuer just added is found while a
// flood of made-up kids costs no more than one fetch per interval. Loads
// are shared by every caller waiting for them. It is safe for concurrent
// use.
type RemoteKeySet struct {
	url    string
	client *http.Client
	now    func() time.Time
	group  singleflight.Group

	mu       sync.Mutex // guards the fields below
	keys     []Key
	loadedAt time.Time // when keys were loaded; zero before the first load
	tried    time.Time // when the latest load started
}

// NewRemoteKeySet returns a KeySet of the JWKS at url, fetched with client
// (nil: a client with a 10s timeout).
func NewRemoteKeySet(url string, client *http.Client) *RemoteKeySet {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &RemoteKeySet{url: url, client: client, now: time.Now}
}

// Key implements KeySet.
func (r *RemoteKeySet) Key(ctx context.Context, kid string) (Key, error) {
	r.mu.Lock()
	keys, fresh := r.keys, !r.loadedAt.IsZero() && r.now().Sub(r.loadedAt) < RemoteMaxAge
	mayLoad := r.tried.IsZero() || r.now().Sub(r.tried) >= RemoteMinInterval
	r.mu.Unlock()
	if fresh {
		if k, err := pick(keys, kid); err == nil || !mayLoad {
			return k, err
		}
	}
	if !mayLoad && keys != nil {
		return pick(keys, kid)
	}
	if err := r.Load(ctx); err != nil {
		if keys != nil {
			// The issuer's JWKS is unreachable: go on with the keys
			// last read.
			return pick(keys, kid)
		}
		return Key{}, err
	}
	r.mu.Lock()
	keys = r.keys
	r.mu.Unlock()
	return pick(keys, kid)
}

// Load fetches the JWKS now. Concurrent calls share one fetch.
func (r *RemoteKeySet) Load(ctx context.Context) error {
	ch := r.group.DoChan("load", func() (any, error) {
		r.mu.Lock()
		r.tried = r.now()
		r.mu.Unlock()
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		keys, err := r.fetch(lctx)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.keys, r.loadedAt = keys, r.now()
		r.mu.Unlock()
		return nil, nil
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return fmt.Errorf("assertion: waiting for JWKS: %w", context.Cause(ctx))
	}
}

func (r *RemoteKeySet) fetch(ctx context.Context) ([]Key, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, fmt.Errorf("assertion: JWKS %s: %w", r.url, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	res, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("assertion: JWKS %s: %w", r.url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("assertion: JWKS %s: status %s", r.url, res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("assertion: JWKS %s: %w", r.url, err)
	}
	if len(b) > maxJWKSBytes {
		return nil, errors.New("assertion: JWKS " + r.url + " is larger than 1 MiB")
	}
	return ParseJWKS(b)
}
