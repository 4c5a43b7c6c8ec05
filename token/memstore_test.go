package token

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
)

// memKeyStore is an in-memory KeyStore for tests.
type memKeyStore struct {
	mu   sync.Mutex // guards keys and fail
	keys []Key
	fail error // when set, SigningKeys returns it

	reads atomic.Int64 // calls of SigningKeys
	// gate, when non-nil, makes SigningKeys wait until it is closed.
	gate chan struct{}
}

func (s *memKeyStore) SigningKeys(ctx context.Context) ([]Key, error) {
	s.reads.Add(1)
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	keys := slices.Clone(s.keys)
	slices.SortStableFunc(keys, func(a, b Key) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return keys, nil
}

func (s *memKeyStore) AddSigningKey(_ context.Context, k Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, have := range s.keys {
		if have.ID == k.ID {
			return errors.New("memKeyStore: duplicate key ID")
		}
	}
	s.keys = append(s.keys, k)
	return nil
}

func (s *memKeyStore) DeleteSigningKey(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range s.keys {
		if k.ID == id {
			s.keys = slices.Delete(s.keys, i, i+1)
			return nil
		}
	}
	return ErrKeyNotFound
}

func (s *memKeyStore) setFail(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}
