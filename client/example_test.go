package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/client/clienttest"
)

// Log in against the JSON API, then use the client's http.Client: tokens
// are refreshed behind it.
func Example() {
	idp := clienttest.NewServer(clienttest.Config{}) // stands in for https://auth.example.com
	defer idp.Close()
	idp.AddUser("alice", "correct horse")
	ctx := context.Background()

	api := client.JSONAPI(idp.URL)
	tokens, err := api.Login(ctx, "alice", "correct horse")
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(client.Config{
		Refresher: api,
		Store:     client.NewMemoryStore(tokens),
		OnReauthRequired: func(err error) {
			log.Printf("session over, log in again: %v", err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	resp, err := c.HTTPClient().Get(idp.URL + "/api/me")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}

// Any RFC 6749 server: OAuth2 talks to its token endpoint, optionally as a
// confidential client.
func ExampleOAuth2() {
	idp := clienttest.NewServer(clienttest.Config{ClientSecret: "s3cret"})
	defer idp.Close()
	idp.AddUser("alice", "correct horse")

	oauth := client.OAuth2(idp.URL+"/oauth2/token", "my-cli", client.WithClientSecret("s3cret"))
	tokens, err := oauth.Login(context.Background(), "alice", "correct horse") // grant_type=password
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(client.Config{Refresher: oauth, Store: client.NewMemoryStore(tokens)})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := c.HTTPClient().Get(idp.URL + "/api/me")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}

// A FileStore keeps the session across runs of a CLI, and lets several
// processes share it: an OS file lock makes one of them refresh while the
// others take the tokens it saved.
func ExampleNewFileStore() {
	idp := clienttest.NewServer(clienttest.Config{})
	defer idp.Close()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	store := client.NewFileStore(filepath.Join(dir, "tokens.json"))
	if t, _ := store.Load(ctx); t.IsZero() {
		// First run: log in (here, a session issued by the test provider).
		if err := store.Save(ctx, idp.Issue("alice")); err != nil {
			log.Fatal(err)
		}
	}
	c, err := client.New(client.Config{Refresher: client.JSONAPI(idp.URL), Store: store})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := c.HTTPClient().Get(idp.URL + "/api/me")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}

// When the session ends (revoked, expired, refresh token reused), every
// request fails with ErrReauthRequired until the user logs in again.
func ExampleErrReauthRequired() {
	idp := clienttest.NewServer(clienttest.Config{})
	defer idp.Close()
	idp.AddUser("alice", "correct horse")
	api := client.JSONAPI(idp.URL)
	c, err := client.New(client.Config{Refresher: api, Store: client.NewMemoryStore(idp.Issue("alice"))})
	if err != nil {
		log.Fatal(err)
	}
	idp.RevokeAll() // a logout elsewhere

	_, err = c.HTTPClient().Get(idp.URL + "/api/me")
	if errors.Is(err, client.ErrReauthRequired) {
		fmt.Println("log in again")
		tokens, err := api.Login(context.Background(), "alice", "correct horse")
		if err != nil {
			log.Fatal(err)
		}
		if err := c.SetTokens(context.Background(), tokens); err != nil {
			log.Fatal(err)
		}
	}
	resp, err := c.HTTPClient().Get(idp.URL + "/api/me")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// log in again
	// 200 OK
}

// Keep the tokens anywhere (a keychain, a database) with OnTokenChange.
func ExampleConfig_onTokenChange() {
	idp := clienttest.NewServer(clienttest.Config{})
	defer idp.Close()
	c, err := client.New(client.Config{
		Refresher: client.JSONAPI(idp.URL),
		Store:     client.NewMemoryStore(idp.Issue("alice")),
		OnTokenChange: func(t client.Tokens) {
			// Save t somewhere; printing or logging it shows no secret.
			fmt.Println("new tokens:", !t.IsZero())
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Refresh(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output: new tokens: true
}

// Libraries that take an oauth2.TokenSource get the client's access tokens.
func ExampleClient_TokenSource() {
	idp := clienttest.NewServer(clienttest.Config{})
	defer idp.Close()
	c, err := client.New(client.Config{Refresher: client.JSONAPI(idp.URL), Store: client.NewMemoryStore(idp.Issue("alice"))})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := c.TokenSource(context.Background()).Token()
	if err != nil {
		log.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, idp.URL+"/api/me", nil)
	tok.SetAuthHeader(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}
