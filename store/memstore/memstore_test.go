package memstore_test

import (
	"testing"

	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/store/memstore"
	"github.com/silentrefresh/silentrefresh/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open:   func(*testing.T) store.Store { return memstore.New() },
		Reopen: func(_ *testing.T, s store.Store) store.Store { return s.(*memstore.Store).Reopen() },
	})
}
