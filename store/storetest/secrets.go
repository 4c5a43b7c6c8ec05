package storetest

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/silentrefresh/silentrefresh/store"
)

func testLoadOrStoreSecret(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	stores := []store.Store{st}
	if s.h.Reopen != nil {
		stores = append(stores, s.reopen(t, unwrapStore(st)))
	}
	const n = 16
	got := make([][]byte, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			cand := bytes.Repeat([]byte{byte(i + 1)}, 32)
			<-start
			got[i], errs[i] = stores[i%len(stores)].LoadOrStoreSecret(ctx, "rotation", cand)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("LoadOrStoreSecret %d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("caller %d got secret %x, caller 0 got %x", i, got[i], got[0])
		}
	}
	if len(got[0]) != 32 || got[0][0] == 0 || !bytes.Equal(got[0], bytes.Repeat(got[0][:1], 32)) {
		t.Errorf("stored secret %x is none of the candidates", got[0])
	}
	again, err := st.LoadOrStoreSecret(ctx, "rotation", []byte("a later candidate"))
	if err != nil || !bytes.Equal(again, got[0]) {
		t.Errorf("LoadOrStoreSecret later = %x, %v; want %x", again, err, got[0])
	}
	other, err := st.LoadOrStoreSecret(ctx, "other", []byte("other secret"))
	if err != nil || string(other) != "other secret" {
		t.Errorf("LoadOrStoreSecret(other) = %q, %v", other, err)
	}
}
