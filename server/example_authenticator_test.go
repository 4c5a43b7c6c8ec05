package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
)

// An application that keeps its users in its own database embeds the
// server and checks logins itself; silentrefresh keeps the sessions.
func ExampleAuthenticator() {
	dir, _ := os.MkdirTemp("", "embed")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "sessions.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	// The application's own user table.
	staff := map[string]struct{ password, role string }{"ada": {"analytical engine", "admin"}}

	srv, err := server.New(ctx, server.Config{
		Store:  st,
		Issuer: "https://auth.example.com",
		Authenticator: server.AuthenticatorFunc(func(ctx context.Context, req server.LoginRequest) (server.Identity, error) {
			u, ok := staff[req.Username]
			if !ok || u.password != req.Password { // a real app compares a password hash
				return server.Identity{}, server.ErrInvalidCredentials
			}
			return server.Identity{Subject: "staff:" + req.Username, Claims: claims.Set{"roles": []string{u.role}}}, nil
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	login := func(user, password string) *httptest.ResponseRecorder {
		body, _ := json.Marshal(map[string]string{"username": user, "password": password})
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("POST", "/api/auth/login", bytes.NewReader(body)))
		return rec
	}

	fmt.Println("wrong password:", login("ada", "difference engine").Code)
	rec := login("ada", "analytical engine")
	var tok struct{ AccessToken string }
	json.Unmarshal(rec.Body.Bytes(), &tok)
	c, err := srv.Verifier().Verify(ctx, tok.AccessToken)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("login:", rec.Code, c.Subject, c.Extra["roles"])
	// Output:
	// wrong password: 401
	// login: 200 staff:ada [admin]
}
