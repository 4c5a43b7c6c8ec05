package user_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/user"
)

// endingStore is a real store whose lookups end the caller's context just
// after they succeed, as a request deadline can.
type endingStore struct {
	*sqlite.Store
	cancel context.CancelFunc
}

func (s endingStore) UserByName(ctx context.Context, name string) (user.User, error) {
	u, err := s.Store.UserByName(ctx, name)
	s.cancel()
	return u, err
}

// TestAuthenticateHashesNothingOnceTheContextEnded: a request whose time
// is up gets its context's error, for a known user and an unknown one,
// rather than a hash computed for nobody.
func TestAuthenticateHashesNothingOnceTheContextEnded(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "u.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hash, err := user.HashPasswordParams("pw", user.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(t.Context(), user.User{ID: "u1", Username: "alice", PasswordHash: hash, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "nobody"} {
		ctx, cancel := context.WithCancel(t.Context())
		u, err := user.Authenticate(ctx, endingStore{st, cancel}, name, "pw")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Authenticate(%s) with the context ended after the lookup = %+v, %v; want context.Canceled", name, u, err)
		}
	}
	if u, err := user.Authenticate(t.Context(), st, "alice", "pw"); err != nil || u.ID != "u1" {
		t.Fatalf("Authenticate = %+v, %v", u, err)
	}
}
