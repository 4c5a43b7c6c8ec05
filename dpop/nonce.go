package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"
)

// DefaultNoncePeriod is how long one server nonce is current when
// NewNonces is given zero. A nonce stays valid for one period more.
const DefaultNoncePeriod = 5 * time.Minute

// Nonces issues and checks server nonces (RFC 9449 section 8) without
// keeping any state: a nonce is the number of the current period with its
// HMAC under a secret, so that every replica holding the same secret issues
// and accepts the same nonces. A nonce is valid in its period and the one
// after it. It is safe for concurrent use. Create one with NewNonces; the
// zero value is not usable.
type Nonces struct {
	secret []byte
	period time.Duration
	now    func() time.Time

	cur atomic.Pointer[issued] // the nonce of the latest period asked for
}

type issued struct {
	epoch int64
	nonce string
}

// NewNonces returns Nonces keyed by secret (at least 32 bytes), each
// current for period (zero: DefaultNoncePeriod), on the clock now (nil:
// time.Now).
func NewNonces(secret []byte, period time.Duration, now func() time.Time) (*Nonces, error) {
	if len(secret) < 32 {
		return nil, errors.New("dpop: nonce secret must be at least 32 bytes")
	}
	if period < 0 {
		return nil, errors.New("dpop: nonce period must be positive")
	}
	if period == 0 {
		period = DefaultNoncePeriod
	}
	if now == nil {
		now = time.Now
	}
	return &Nonces{secret: append([]byte(nil), secret...), period: period, now: now}, nil
}

func (n *Nonces) epoch() int64 { return n.now().UnixNano() / int64(n.period) }

// Current returns the nonce to send in the DPoP-Nonce header now.
func (n *Nonces) Current() string {
	e := n.epoch()
	if c := n.cur.Load(); c != nil && c.epoch == e {
		return c.nonce
	}
	c := &issued{epoch: e, nonce: n.make(e)}
	n.cur.Store(c)
	return c.nonce
}

// make returns the nonce of epoch e: base64url(e || HMAC(secret, e)[:16]).
func (n *Nonces) make(e int64) string {
	var buf [8 + 16]byte
	binary.BigEndian.PutUint64(buf[:8], uint64(e))
	m := hmac.New(sha256.New, n.secret)
	m.Write(buf[:8])
	copy(buf[8:], m.Sum(nil))
	return b64.EncodeToString(buf[:])
}

// Valid reports whether nonce was issued by Current in this period or the
// one before.
func (n *Nonces) Valid(nonce string) bool {
	b, err := b64.DecodeString(nonce)
	if err != nil || len(b) != 24 {
		return false
	}
	e := int64(binary.BigEndian.Uint64(b[:8]))
	if now := n.epoch(); e != now && e != now-1 {
		return false
	}
	return hmac.Equal([]byte(n.make(e)), []byte(nonce))
}
