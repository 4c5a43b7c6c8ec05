package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/client/clienttest"
)

// loginRefresher is what both refreshers offer.
type loginRefresher interface {
	client.Refresher
	client.Revoker
	Login(ctx context.Context, username, password string) (client.Tokens, error)
}

// Both refreshers against the fake provider: login, refresh, rotation, the
// errors that end a session and those that do not, logout.
func TestRefreshers(t *testing.T) {
	const secret = "s3cret"
	tests := []struct {
		name string
		make func(url string, hc *http.Client) loginRefresher
	}{
		{"json api", func(url string, hc *http.Client) loginRefresher {
			return client.JSONAPI(url, client.WithHTTPClient(hc))
		}},
		{"oauth2", func(url string, hc *http.Client) loginRefresher {
			return client.OAuth2(url+"/oauth2/token", "cli", client.WithHTTPClient(hc),
				client.WithClientSecret(secret), client.WithScopes("read"), client.WithRevocationURL(url+"/oauth2/revoke"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := clienttest.NewServer(clienttest.Config{AccessTTL: time.Hour, ClientSecret: secret})
			t.Cleanup(srv.Close)
			srv.AddUser("alice", "pw")
			r := tt.make(srv.URL, srv.Client())
			ctx := t.Context()

			if _, err := r.Login(ctx, "alice", "wrong"); err == nil {
				t.Fatal("login with a wrong password succeeded")
			} else if errors.Is(err, client.ErrReauthRequired) {
				t.Errorf("login error %v", err)
			}
			before := time.Now()
			tok, err := r.Login(ctx, "alice", "pw")
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Expiry.Before(before.Add(time.Hour)) || tok.Expiry.After(time.Now().Add(time.Hour)) {
				t.Fatalf("login tokens %v, expiry %v", tok, tok.Expiry)
			}
			g, err := r.Refresh(ctx, tok.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			if g.AccessToken == "" || g.RefreshToken == "" || g.RefreshToken == tok.RefreshToken || g.ExpiresIn != time.Hour || g.TokenType != "Bearer" {
				t.Fatalf("grant %+v", g)
			}
			// Presenting the first token again inside grace answers the same successor.
			g2, err := r.Refresh(ctx, tok.RefreshToken)
			if err != nil || g2.RefreshToken != g.RefreshToken {
				t.Fatalf("grace replay: %v, same successor %v", err, g2.RefreshToken == g.RefreshToken)
			}
			_, err = r.Refresh(ctx, "nonsense")
			var re *client.RetrieveError
			if !errors.Is(err, client.ErrInvalidGrant) || !errors.As(err, &re) || re.ErrorDescription != clienttest.ReasonUnknown {
				t.Fatalf("unknown token: %v", err)
			}
			if strings.Contains(err.Error(), "nonsense") {
				t.Errorf("error %q repeats the token", err)
			}
			srv.FailNext(1, http.StatusServiceUnavailable, 7*time.Second)
			_, err = r.Refresh(ctx, g.RefreshToken)
			if !errors.As(err, &re) || !re.Temporary() || re.RetryAfter != 7*time.Second || errors.Is(err, client.ErrInvalidGrant) {
				t.Fatalf("503: %v", err)
			}
			if err := r.Revoke(ctx, g.RefreshToken); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Refresh(ctx, g.RefreshToken); !errors.As(err, &re) || re.ErrorDescription != clienttest.ReasonRevoked {
				t.Fatalf("after revoke: %v", err)
			}
		})
	}
}

// A wrong client secret is an error, but not the end of the session.
func TestOAuth2WrongClientSecret(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := clienttest.New(clienttest.Config{AccessTTL: time.Minute, ClientSecret: "right"})
		hc := &http.Client{Transport: p.Transport()}
		c, err := client.New(client.Config{
			Refresher: client.OAuth2(idp+"/oauth2/token", "cli", client.WithHTTPClient(hc), client.WithClientSecret("wrong")),
			Store:     client.NewMemoryStore(p.Issue("alice")),
			Base:      p.Transport(),
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		_, _, err = get(t.Context(), c, idp+"/api/me")
		var re *client.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || errors.Is(err, client.ErrReauthRequired) {
			t.Fatalf("got %v, want invalid_client without ending the session", err)
		}
		if a := c.Stats().Attempts; a != 1 {
			t.Errorf("attempts = %d: a permanent error was retried", a)
		}
	})
}

// The oauth2.TokenSource adapter hands out current access tokens (never the
// refresh token) and waits for a refresh when they expire.
func TestTokenSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c, _ := inProcess(t, clienttest.Config{AccessTTL: time.Minute}, client.Config{})
		ts := c.TokenSource(t.Context())
		a, err := ts.Token()
		if err != nil || a.AccessToken == "" || a.RefreshToken != "" || a.TokenType != "Bearer" {
			t.Fatalf("token %+v, %v", a, err)
		}
		time.Sleep(time.Minute)
		b, err := ts.Token()
		if err != nil || b.AccessToken == a.AccessToken || !b.Valid() {
			t.Fatalf("after expiry: %+v, %v", b, err)
		}
		if p.Stats().Rotations != 1 {
			t.Errorf("rotations = %d", p.Stats().Rotations)
		}
	})
}

// Logout revokes at the server, clears the store, and ends the session
// without OnReauthRequired; SetTokens starts a new one.
func TestLogoutAndSetTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ended, changed int
		p, c, store := inProcess(t, clienttest.Config{}, client.Config{
			OnReauthRequired: func(error) { ended++ },
			OnTokenChange:    func(client.Tokens) { changed++ },
		})
		if err := c.Logout(t.Context()); err != nil {
			t.Fatal(err)
		}
		if tok, _ := store.Load(t.Context()); !tok.IsZero() {
			t.Error("store not cleared")
		}
		if st := p.Stats(); st.Logouts != 1 {
			t.Errorf("logouts = %d", st.Logouts)
		}
		if _, _, err := get(t.Context(), c, idp+"/api/me"); !errors.Is(err, client.ErrReauthRequired) {
			t.Errorf("after logout: %v", err)
		}
		tok := p.Issue("bob")
		if err := c.SetTokens(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		status, body, err := get(t.Context(), c, idp+"/api/me")
		if err != nil || status != 200 || decodeEcho(t, body).Sub != "bob" {
			t.Fatalf("after SetTokens: %d %q %v", status, body, err)
		}
		if saved, _ := store.Load(t.Context()); saved != tok {
			t.Error("SetTokens did not save")
		}
		if ended != 0 || changed != 2 {
			t.Errorf("OnReauthRequired %d, OnTokenChange %d; want 0, 2", ended, changed)
		}
	})
}

func TestNewValidates(t *testing.T) {
	if _, err := client.New(client.Config{Store: client.NewMemoryStore(client.Tokens{})}); err == nil {
		t.Error("no Refresher accepted")
	}
	if _, err := client.New(client.Config{Refresher: client.JSONAPI("http://x")}); err == nil {
		t.Error("no Store accepted")
	}
}

// Tokens never print their secrets.
func TestTokensRedacted(t *testing.T) {
	tok := client.Tokens{AccessToken: "ACCESS-SECRET", RefreshToken: "REFRESH-SECRET", Expiry: epoch}
	for _, s := range []string{tok.String(), tok.GoString(), fmtAll(tok)} {
		if strings.Contains(s, "SECRET") {
			t.Errorf("%q reveals a token", s)
		}
	}
}

func fmtAll(tok client.Tokens) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%v %+v %s %#v ", tok, tok, tok, tok)
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "tokens", tok)
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "tokens", tok)
	return b.String()
}

// Refreshes, failures, lost answers and the end of a session are logged,
// and no token ever appears in the log.
func TestLogsNoTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		var seen []client.Tokens
		p, c, store := inProcess(t, clienttest.Config{AccessTTL: time.Minute}, client.Config{
			Logger:        slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
			OnTokenChange: func(t client.Tokens) { seen = append(seen, t) },
		})
		first, _ := store.Load(t.Context())
		seen = append(seen, first)
		time.Sleep(time.Minute)
		p.FailNext(1, http.StatusServiceUnavailable, 0)
		p.DropNext(1)
		get(t.Context(), c, idp+"/api/me")
		time.Sleep(time.Minute)
		p.FailNext(4, http.StatusBadGateway, 0)
		get(t.Context(), c, idp+"/api/me")
		p.RevokeAll()
		get(t.Context(), c, idp+"/api/me")
		log := buf.String()
		for _, want := range []string{"token refreshed", "retrying token refresh", "token refresh failed", "session ended"} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		}
		for _, tok := range seen {
			for _, secret := range []string{tok.AccessToken, tok.RefreshToken} {
				if secret != "" && strings.Contains(log, secret) {
					t.Fatalf("a token appears in the log:\n%s", log)
				}
			}
		}
	})
}

// An option a refresher cannot honour does not compile with it: the
// OAuth2-only options are not JSONAPIOptions, the common one is both.
func TestOptionTypes(t *testing.T) {
	jsonOpt := reflect.TypeFor[client.JSONAPIOption]()
	oauthOpt := reflect.TypeFor[client.OAuth2Option]()
	for name, opt := range map[string]client.OAuth2Option{
		"WithClientSecret":  client.WithClientSecret("s"),
		"WithScopes":        client.WithScopes("read"),
		"WithRevocationURL": client.WithRevocationURL("https://idp.test/revoke"),
	} {
		if reflect.TypeOf(opt).Implements(jsonOpt) {
			t.Errorf("%s is accepted by JSONAPI, which ignores it", name)
		}
	}
	common := reflect.TypeOf(client.WithHTTPClient(http.DefaultClient))
	if !common.Implements(jsonOpt) || !common.Implements(oauthOpt) {
		t.Error("WithHTTPClient is not accepted by both refreshers")
	}
}
