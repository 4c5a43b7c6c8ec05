package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/store/storetest"
)

// harness opens each store on a new file in t.TempDir.
var harness = storetest.Harness{
	Open: func(t *testing.T) store.Store {
		return openTest(t, filepath.Join(t.TempDir(), "test.db"))
	},
	Reopen: func(t *testing.T, s store.Store) store.Store {
		return openTest(t, s.(*Store).Path())
	},
}

func openTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, harness)
}
