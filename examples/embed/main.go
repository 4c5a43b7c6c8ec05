// Command embed is a Go application that keeps its own users and embeds
// the silentrefresh server for their sessions: its Authenticator checks the
// password against the application's table and gives each user's roles as
// claims, which go into every access token.
//
//	go run ./examples/embed -addr 127.0.0.1:8090 -db /tmp/embed.db
//
// The users here are a map; a real application reads its database or
// LDAP in Authenticate. It prints "listening on URL" when ready.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/user"
)

// account is a row of the application's own user table.
type account struct {
	id, passwordHash string
	roles            []string
}

// appUsers is the application's authenticator: any type with this method
// will do.
type appUsers map[string]account

func (u appUsers) Authenticate(ctx context.Context, req server.LoginRequest) (server.Identity, error) {
	a, ok := u[req.Username]
	if !ok {
		return server.Identity{}, server.ErrInvalidCredentials
	}
	if ok, err := user.VerifyPassword(a.passwordHash, req.Password); err != nil || !ok {
		return server.Identity{}, server.ErrInvalidCredentials
	}
	return server.Identity{Subject: a.id, Claims: claims.Set{"roles": a.roles}}, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "address to listen on")
	db := flag.String("db", "embed.db", "SQLite file for the sessions")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	hash, err := user.HashPassword("grace-hopper-1906")
	if err != nil {
		log.Fatal(err)
	}
	users := appUsers{"grace": {id: "emp-1906", passwordHash: hash, roles: []string{"admin"}}}

	st, err := sqlite.Open(ctx, *db)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.New(ctx, server.Config{
		Store:         st,
		Issuer:        "http://" + ln.Addr().String(),
		Authenticator: users,
	})
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		hs.Shutdown(context.Background())
	}()
	fmt.Printf("listening on http://%s\n", ln.Addr())
	if err := hs.Serve(ln); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
