package client_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/user"
)

// With Config.DPoP the session is bound to a key the client holds (RFC
// 9449): the FileStore keeps it beside the tokens, Login binds the session
// to it, and every refresh and request carries a proof of it.
func ExampleClient_Login() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	url := exampleServer(ctx, dir) // stands in for https://auth.example.com

	store := client.NewFileStore(filepath.Join(dir, "tokens.json"))
	key, err := store.DPoPKey(ctx) // created on first use, mode 0600
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(client.Config{Refresher: client.JSONAPI(url), Store: store, DPoP: key})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	tokens, err := c.Login(ctx, "alice", "correct horse")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("token type:", tokens.TokenType)

	resp, err := c.HTTPClient().Get(url + "/api/me") // Authorization: DPoP …, DPoP: <proof>
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// token type: DPoP
	// 200 OK
}

// exampleServer runs the real server on a SQLite file in dir, with one
// user, and returns its URL. It is left running: the example process ends.
func exampleServer(ctx context.Context, dir string) string {
	st, err := sqlite.Open(ctx, filepath.Join(dir, "server.db"))
	if err != nil {
		log.Fatal(err)
	}
	hash, _ := user.HashPasswordParams("correct horse", user.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	if err := st.CreateUser(ctx, user.User{ID: "u-alice", Username: "alice", PasswordHash: hash, CreatedAt: time.Now()}); err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nil)
	srv, err := server.New(ctx, server.Config{Store: st, Issuer: "http://" + hs.Listener.Addr().String()})
	if err != nil {
		log.Fatal(err)
	}
	hs.Config.Handler = srv
	hs.Start()
	return hs.URL
}
