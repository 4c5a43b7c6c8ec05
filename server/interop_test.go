package server_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/silentrefresh/silentrefresh/server"
)

// TestXOAuth2Interop drives the server with golang.org/x/oauth2, a client
// written elsewhere against RFC 6749: the password grant, then a refresh
// through its TokenSource, then an API call with the refreshed token.
func TestXOAuth2Interop(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.AccessTTL = 5 * time.Second })
	ctx := context.Background()
	conf := &oauth2.Config{
		ClientID: "interop",
		Endpoint: oauth2.Endpoint{TokenURL: e.http.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleAutoDetect},
	}
	tok, err := conf.PasswordCredentialsToken(ctx, testUser, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" || tok.TokenType != "Bearer" || time.Until(tok.Expiry) > 6*time.Second {
		t.Fatalf("token = %+v", tok)
	}
	// x/oauth2 treats a token as expired 10 s before its expiry, so a 5 s
	// token makes its TokenSource refresh at once.
	src := conf.TokenSource(ctx, tok)
	next, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	if next.RefreshToken == tok.RefreshToken || next.AccessToken == tok.AccessToken {
		t.Fatal("TokenSource did not rotate the tokens")
	}
	res, err := oauth2.NewClient(ctx, oauth2.StaticTokenSource(next)).Get(e.http.URL + "/api/me")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/api/me with the refreshed token: %d %s", res.StatusCode, b)
	}
	// The old refresh token, presented by x/oauth2 after the grace window,
	// is reuse: x/oauth2 sees a *RetrieveError with invalid_grant.
	e.clock.Advance(11 * time.Second)
	_, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	var re *oauth2.RetrieveError
	if !asRetrieveError(err, &re) || re.ErrorCode != "invalid_grant" || re.ErrorDescription != "reused" {
		t.Fatalf("reuse through x/oauth2: %v", err)
	}
}

func asRetrieveError(err error, target **oauth2.RetrieveError) bool {
	re, ok := err.(*oauth2.RetrieveError)
	if ok {
		*target = re
	}
	return ok
}
