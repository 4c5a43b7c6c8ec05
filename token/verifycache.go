package token

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"
)

// MaxVerifyCache is the largest VerifierConfig.CacheSize.
const MaxVerifyCache = 1 << 20

// verifyCache remembers the claims of tokens that verified, by the SHA-256
// of the token's text, so that a token presented again is neither parsed
// nor its signature checked again: an Ed25519 verification is most of the
// cost of a bearer check.
//
// It is direct-mapped: a fixed array of slots, the slot of a token chosen
// by bits of its hash, each slot holding at most one token (a newer one
// evicts it). Memory is bounded by the number of slots; a lookup is one
// atomic load and no lock. An entry is only a hit while its token is
// within its validity (exp and nbf, with the Verifier's leeway) and while
// the key set still holds the very key that verified it; past exp it is
// dropped. A token that differs from a cached one in any byte has another
// hash, so a forged token is never a hit.
type verifyCache struct {
	slots []atomic.Pointer[cacheEntry]
	mask  uint64
}

// cacheEntry is one verified token.
type cacheEntry struct {
	sum       [sha256.Size]byte
	claims    Claims
	notBefore time.Time // zero if the token has no nbf
	kid       string
	key       ed25519.PublicKey // the key that verified it
}

// newVerifyCache returns a cache of n slots, n rounded up to a power of
// two, or nil for n <= 0.
func newVerifyCache(n int) *verifyCache {
	if n <= 0 {
		return nil
	}
	size := 1 << bits.Len(uint(n-1))
	return &verifyCache{slots: make([]atomic.Pointer[cacheEntry], size), mask: uint64(size - 1)}
}

func (c *verifyCache) slot(sum *[sha256.Size]byte) *atomic.Pointer[cacheEntry] {
	h := uint64(sum[0]) | uint64(sum[1])<<8 | uint64(sum[2])<<16 | uint64(sum[3])<<24 |
		uint64(sum[4])<<32 | uint64(sum[5])<<40 | uint64(sum[6])<<48 | uint64(sum[7])<<56
	return &c.slots[h&c.mask]
}

// get returns the entry of the token whose hash is sum, if it is cached
// and valid at now with the given leeway. An entry past its expiry is
// dropped.
func (c *verifyCache) get(sum *[sha256.Size]byte, now time.Time, leeway time.Duration) (*cacheEntry, bool) {
	p := c.slot(sum)
	e := p.Load()
	if e == nil || subtle.ConstantTimeCompare(e.sum[:], sum[:]) != 1 {
		return nil, false
	}
	if !now.Before(e.claims.ExpiresAt.Add(leeway)) {
		p.CompareAndSwap(e, nil)
		return nil, false
	}
	if !e.notBefore.IsZero() && now.Before(e.notBefore.Add(-leeway)) {
		return nil, false
	}
	return e, true
}

// put remembers a token that verified.
func (c *verifyCache) put(e *cacheEntry) {
	c.slot(&e.sum).Store(e)
}

// claimsCopy returns the entry's claims with a slice of their own, so that
// a caller changing them changes no other caller's.
func (e *cacheEntry) claimsCopy() Claims {
	c := e.claims
	c.Audience = slices.Clone(c.Audience)
	c.Extra = copyExtra(c.Extra)
	return c
}
