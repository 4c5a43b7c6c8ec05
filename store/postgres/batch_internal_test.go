package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/store/postgres/pgtest"
)

var t0 = time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)

func h(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

func openInternal(t *testing.T) (*Store, string) {
	t.Helper()
	dsn := pgtest.NewDSN(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dsn
}

func mkFamily(t *testing.T, s *Store, id string) []byte {
	t.Helper()
	f := session.Family{ID: id, Subject: "sub", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	tok := session.RefreshToken{Hash: h(id + "/0"), FamilyID: id, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if _, err := s.CreateFamilyCapped(t.Context(), f, tok, 0, ""); err != nil {
		t.Fatal(err)
	}
	return tok.Hash
}

// consumeDecide consumes an unconsumed token with successor hash succ and
// records the chain it saw.
func consumeDecide(succ []byte, seen *session.Chain) func(session.Chain) (session.Change, error) {
	return func(c session.Chain) (session.Change, error) {
		*seen = c
		if c.Token.Consumed() {
			return session.Change{}, nil
		}
		n := session.RefreshToken{Hash: succ, FamilyID: c.Family.ID, Generation: c.Token.Generation + 1, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		return session.Change{Consume: &n, ConsumedAt: t0.Add(time.Second)}, nil
	}
}

func req(ctx context.Context, hash []byte, decide func(session.Chain) (session.Change, error)) *exchangeReq {
	return &exchangeReq{ctx: ctx, hash: hash, decide: decide, done: make(chan exchangeRes, 1)}
}

func result(r *exchangeReq) exchangeRes {
	select {
	case res := <-r.done:
		return res
	default:
		return exchangeRes{err: errors.New("no result")}
	}
}

// TestRunBatch drives runBatch directly with batches built by hand, so that
// every case really runs as one transaction of several requests.
func TestRunBatch(t *testing.T) {
	ctx := t.Context()
	s, _ := openInternal(t)

	t.Run("distinct families all rotate", func(t *testing.T) {
		var reqs []*exchangeReq
		seen := make([]session.Chain, 8)
		for i := range 8 {
			id := fmt.Sprintf("d%d", i)
			reqs = append(reqs, req(ctx, mkFamily(t, s, id), consumeDecide(h(id+"/1"), &seen[i])))
		}
		s.runBatch(reqs)
		for i, r := range reqs {
			if res := result(r); res.err != nil || res.decideErr != nil {
				t.Fatalf("request %d: %+v", i, res)
			}
			toks, err := s.FamilyTokens(ctx, fmt.Sprintf("d%d", i))
			if err != nil || len(toks) != 2 || !toks[0].Consumed() || !bytes.Equal(toks[0].SuccessorHash, toks[1].Hash) ||
				!toks[0].ConsumedAt.Equal(t0.Add(time.Second)) || toks[1].Generation != 1 {
				t.Errorf("family d%d after the batch: %+v, %v", i, toks, err)
			}
		}
	})

	t.Run("one token three times sees the earlier writes", func(t *testing.T) {
		head := mkFamily(t, s, "same")
		seen := make([]session.Chain, 3)
		var reqs []*exchangeReq
		for i := range 3 {
			// Each would consume with a different successor: only the
			// first may.
			reqs = append(reqs, req(ctx, head, consumeDecide(h(fmt.Sprintf("same/1/%d", i)), &seen[i])))
		}
		s.runBatch(reqs)
		for i, r := range reqs {
			if res := result(r); res.err != nil || res.decideErr != nil {
				t.Fatalf("request %d: %+v", i, res)
			}
		}
		if seen[0].Token.Consumed() {
			t.Errorf("the first request saw its token consumed")
		}
		for i := 1; i < 3; i++ {
			if !seen[i].Token.Consumed() || seen[i].Successor == nil || !bytes.Equal(seen[i].Successor.Hash, h("same/1/0")) {
				t.Errorf("request %d saw %+v, successor %+v; want the first request's successor", i, seen[i].Token, seen[i].Successor)
			}
		}
		if toks, _ := s.FamilyTokens(ctx, "same"); len(toks) != 2 {
			t.Errorf("family has %d tokens, want 2", len(toks))
		}
	})

	t.Run("decide error, unknown token and cancelled caller stay apart", func(t *testing.T) {
		okHead := mkFamily(t, s, "ok")
		errHead := mkFamily(t, s, "err")
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		boom := errors.New("boom")
		var seen session.Chain
		reqs := []*exchangeReq{
			req(ctx, errHead, func(session.Chain) (session.Change, error) {
				n := session.RefreshToken{Hash: h("err/1"), Generation: 1}
				return session.Change{Consume: &n, ConsumedAt: t0}, boom
			}),
			req(ctx, h("nobody"), func(session.Chain) (session.Change, error) {
				t.Error("decide called for an unknown token")
				return session.Change{}, nil
			}),
			req(cancelled, okHead, func(session.Chain) (session.Change, error) {
				t.Error("decide called for a cancelled caller")
				return session.Change{}, nil
			}),
			req(ctx, okHead, consumeDecide(h("ok/1"), &seen)),
		}
		s.runBatch(reqs)
		if res := result(reqs[0]); res.decideErr != boom {
			t.Errorf("decide error: %+v", res)
		}
		if res := result(reqs[1]); !errors.Is(res.err, session.ErrNotFound) {
			t.Errorf("unknown token: %+v", res)
		}
		if res := result(reqs[2]); !errors.Is(res.err, context.Canceled) {
			t.Errorf("cancelled caller: %+v", res)
		}
		if res := result(reqs[3]); res.err != nil || res.decideErr != nil {
			t.Errorf("good request: %+v", res)
		}
		if toks, _ := s.FamilyTokens(ctx, "err"); len(toks) != 1 || toks[0].Consumed() {
			t.Errorf("a failed decide wrote: %+v", toks)
		}
		if toks, _ := s.FamilyTokens(ctx, "ok"); len(toks) != 2 {
			t.Errorf("the good request did not rotate: %d tokens", len(toks))
		}
	})

	t.Run("a refused change fails alone", func(t *testing.T) {
		goodHead := mkFamily(t, s, "good")
		badHead := mkFamily(t, s, "bad")
		var seen session.Chain
		reqs := []*exchangeReq{
			req(ctx, badHead, func(c session.Chain) (session.Change, error) {
				// A 5-byte hash violates the table's CHECK.
				n := session.RefreshToken{Hash: []byte("short"), Generation: 1, IssuedAt: t0, ExpiresAt: t0}
				return session.Change{Consume: &n, ConsumedAt: t0}, nil
			}),
			req(ctx, goodHead, consumeDecide(h("good/1"), &seen)),
		}
		s.runBatch(reqs)
		if res := result(reqs[0]); res.err == nil {
			t.Errorf("bad change accepted")
		}
		if res := result(reqs[1]); res.err != nil || res.decideErr != nil {
			t.Errorf("good request failed with the bad one: %+v", res)
		}
		if toks, _ := s.FamilyTokens(ctx, "good"); len(toks) != 2 {
			t.Errorf("good family has %d tokens, want 2", len(toks))
		}
		if toks, _ := s.FamilyTokens(ctx, "bad"); len(toks) != 1 || toks[0].Consumed() {
			t.Errorf("bad family changed: %+v", toks)
		}
	})

	t.Run("consuming a consumed token is refused", func(t *testing.T) {
		head := mkFamily(t, s, "twice")
		var seen session.Chain
		blind := func(c session.Chain) (session.Change, error) {
			n := session.RefreshToken{Hash: h(fmt.Sprintf("twice/%x", c.Token.ConsumedAt.UnixNano())), Generation: 1, IssuedAt: t0, ExpiresAt: t0}
			return session.Change{Consume: &n, ConsumedAt: t0}, nil
		}
		reqs := []*exchangeReq{req(ctx, head, consumeDecide(h("twice/1"), &seen)), req(ctx, head, blind)}
		s.runBatch(reqs)
		if res := result(reqs[0]); res.err != nil || res.decideErr != nil {
			t.Errorf("first: %+v", res)
		}
		if res := result(reqs[1]); !errors.Is(res.err, errConcurrentConsume) {
			t.Errorf("second consume of one token: %+v", res)
		}
		if toks, _ := s.FamilyTokens(ctx, "twice"); len(toks) != 2 {
			t.Errorf("family has %d tokens, want 2", len(toks))
		}
	})

	t.Run("consume and revoke of one family in one batch", func(t *testing.T) {
		head := mkFamily(t, s, "cr")
		var seen, seen2 session.Chain
		reqs := []*exchangeReq{
			req(ctx, head, consumeDecide(h("cr/1"), &seen)),
			req(ctx, head, func(c session.Chain) (session.Change, error) {
				seen2 = c
				return session.Change{Revoke: true, RevokeAt: t0.Add(time.Minute), RevokeReason: "reused"}, nil
			}),
			req(ctx, head, func(c session.Chain) (session.Change, error) {
				if !c.Family.Revoked() || c.Family.RevokeReason != "reused" {
					t.Errorf("third request saw family %+v, want it revoked by the second", c.Family)
				}
				return session.Change{Revoke: true, RevokeAt: t0.Add(time.Hour), RevokeReason: "later"}, nil
			}),
		}
		s.runBatch(reqs)
		for i, r := range reqs {
			if res := result(r); res.err != nil || res.decideErr != nil {
				t.Fatalf("request %d: %+v", i, res)
			}
		}
		if !seen2.Token.Consumed() {
			t.Errorf("second request did not see the first one's consume")
		}
		f, err := s.Family(ctx, "cr")
		if err != nil || f.RevokeReason != "reused" || !f.RevokedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("family = %+v, %v", f, err)
		}
		if toks, _ := s.FamilyTokens(ctx, "cr"); len(toks) != 2 {
			t.Errorf("family has %d tokens, want 2", len(toks))
		}
	})
}

// TestRunBatchUnavailable: a batch that cannot reach the database fails
// every request with store.ErrUnavailable.
func TestRunBatchUnavailable(t *testing.T) {
	s, _ := openInternal(t)
	a, b := mkFamily(t, s, "a"), mkFamily(t, s, "b")
	s.pool.Close() // the database is gone; the batchers still run
	var seen session.Chain
	reqs := []*exchangeReq{req(t.Context(), a, consumeDecide(h("a/1"), &seen)), req(t.Context(), b, consumeDecide(h("b/1"), &seen))}
	s.runBatch(reqs)
	for i, r := range reqs {
		if res := result(r); !errors.Is(res.err, store.ErrUnavailable) {
			t.Errorf("request %d: %+v, want ErrUnavailable", i, res)
		}
	}
}

// TestBatchedRotationsStayLinear rotates a few families from many
// goroutines on two stores (two replicas) at once, so that batches form,
// overlap and share families. Every family must end as one linear chain.
func TestBatchedRotationsStayLinear(t *testing.T) {
	s1, dsn := openInternal(t)
	s2, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	const families, perFamily, rounds = 6, 8, 15
	var wg sync.WaitGroup
	for f := range families {
		id := fmt.Sprintf("lin%d", f)
		first := mkFamily(t, s1, id)
		for g := range perFamily {
			st := s1
			if g%2 == 1 {
				st = s2
			}
			wg.Go(func() {
				head := first
				for range rounds {
					var next []byte
					err := st.Exchange(t.Context(), head, func(c session.Chain) (session.Change, error) {
						if c.Token.Consumed() {
							// Someone else rotated: follow the chain.
							next = c.Token.SuccessorHash
							return session.Change{}, nil
						}
						succ := h(fmt.Sprintf("%x", c.Token.Hash))
						next = succ
						n := session.RefreshToken{Hash: succ, Generation: c.Token.Generation + 1, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
						return session.Change{Consume: &n, ConsumedAt: t0}, nil
					})
					if err != nil {
						t.Errorf("Exchange: %v", err)
						return
					}
					head = next
				}
			})
		}
	}
	wg.Wait()
	for f := range families {
		toks, err := s1.FamilyTokens(t.Context(), fmt.Sprintf("lin%d", f))
		if err != nil {
			t.Fatal(err)
		}
		for i, tok := range toks {
			last := i == len(toks)-1
			if tok.Generation != int64(i) || tok.Consumed() == last || (!last && !bytes.Equal(tok.SuccessorHash, toks[i+1].Hash)) {
				t.Fatalf("family lin%d is not a linear chain at generation %d: %+v", f, i, tok)
			}
		}
		if len(toks) < rounds+1 {
			t.Errorf("family lin%d has %d tokens, want at least %d", f, len(toks), rounds+1)
		}
	}
}

// TestDeleteExpiredInChunks removes more families than one chunk holds.
func TestDeleteExpiredInChunks(t *testing.T) {
	s, dsn := openInternal(t)
	pgtest.Exec(t, dsn, `INSERT INTO families (id, subject, created_at, expires_at)
		SELECT 'old' || g, 's', $1, $1 FROM generate_series(1, $2::int) g`, t0, 2*deleteChunk+5)
	pgtest.Exec(t, dsn, `INSERT INTO refresh_tokens (hash, family_id, generation, issued_at, expires_at)
		SELECT sha256(('old' || g)::bytea), 'old' || g, 0, $1, $1 FROM generate_series(1, $2::int) g`, t0, 2*deleteChunk+5)
	mkFamily(t, s, "live") // expires at t0 + 1h
	n, err := s.DeleteExpired(t.Context(), t0.Add(time.Minute))
	if err != nil || n != 2*deleteChunk+5 {
		t.Fatalf("DeleteExpired = %d, %v; want %d", n, err, 2*deleteChunk+5)
	}
	if _, err := s.Family(t.Context(), "live"); err != nil {
		t.Errorf("live family: %v", err)
	}
	if toks, _ := s.FamilyTokens(t.Context(), "old7"); len(toks) != 0 {
		t.Errorf("tokens of a deleted family remain")
	}
}
