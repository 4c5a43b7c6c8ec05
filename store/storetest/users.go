package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/user"
)

func testUsers(t *testing.T, s *suite) {
	ctx := context.Background()
	st := s.open(t)
	alice := user.User{ID: "u-1", Username: "alice", PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA", CreatedAt: T0}
	if err := st.CreateUser(ctx, alice); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	got, err := st.UserByName(ctx, "alice")
	if err != nil {
		t.Fatalf("UserByName: %v", err)
	}
	checkTime(t, "User.CreatedAt", got.CreatedAt, alice.CreatedAt)
	if got.ID != alice.ID || got.Username != alice.Username || got.PasswordHash != alice.PasswordHash {
		t.Errorf("UserByName = %+v, want %+v", got, alice)
	}
	dup := user.User{ID: "u-2", Username: "alice", PasswordHash: "other", CreatedAt: T0}
	if err := st.CreateUser(ctx, dup); !errors.Is(err, user.ErrExists) {
		t.Errorf("CreateUser(taken username) error = %v, want ErrExists", err)
	}
	if got, err := st.UserByName(ctx, "alice"); err != nil || got.ID != alice.ID || got.PasswordHash != alice.PasswordHash {
		t.Errorf("after a refused duplicate, UserByName = %+v, %v", got, err)
	}
	bob := user.User{ID: "u-3", Username: "bob", PasswordHash: "h", CreatedAt: T0.Add(time.Second)}
	if err := st.CreateUser(ctx, bob); err != nil {
		t.Fatalf("CreateUser(bob): %v", err)
	}
	for _, name := range []string{"nobody", "", "alice "} {
		if _, err := st.UserByName(ctx, name); !errors.Is(err, user.ErrNotFound) {
			t.Errorf("UserByName(%q) error = %v, want ErrNotFound", name, err)
		}
	}
}
