package client_test

import (
	"errors"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/server"
)

// TestRealServerLogoutEverywhere: one client logs out everywhere, and the
// other sessions of the user end with it, at the server.
func TestRealServerLogoutEverywhere(t *testing.T) {
	rs := newRealServer(t, server.Config{AccessTTL: time.Minute})
	c1 := rs.login(t, client.Config{})
	c2 := rs.login(t, client.Config{})
	for _, c := range []*client.Client{c1, c2} {
		if status, _, err := get(bounded(t), c, rs.URL+"/api/me"); err != nil || status != 200 {
			t.Fatalf("before: %d %v", status, err)
		}
	}
	other, err := c2.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.LogoutEverywhere(t.Context()); err != nil {
		t.Fatalf("LogoutEverywhere: %v", err)
	}
	if _, _, err := get(bounded(t), c1, rs.URL+"/api/me"); !errors.Is(err, client.ErrReauthRequired) {
		t.Errorf("the client that logged out: %v", err)
	}
	// The other client's session is over at the server: its access token
	// is refused by a session-checked endpoint, and refreshing is refused.
	if status, _, err := get(bounded(t), c2, rs.URL+"/api/me"); err == nil && status == 200 {
		t.Error("the other session still works")
	}
	if _, err := client.JSONAPI(rs.URL).Refresh(t.Context(), other.RefreshToken); !errors.Is(err, client.ErrInvalidGrant) {
		t.Errorf("refreshing the other session: %v", err)
	}
	// Once logged out there is nothing to present: the server is not asked.
	if err := c1.LogoutEverywhere(t.Context()); !errors.Is(err, client.ErrReauthRequired) {
		t.Errorf("LogoutEverywhere again: %v", err)
	}

	// The OAuth2 refresher has no such call: nothing changes.
	o := rs.loginWith(t, client.OAuth2(rs.URL+"/oauth2/token", "cli"), client.Config{})
	if err := o.LogoutEverywhere(t.Context()); !errors.Is(err, client.ErrLogoutEverywhereUnsupported) {
		t.Errorf("OAuth2 LogoutEverywhere: %v", err)
	}
	if status, _, err := get(bounded(t), o, rs.URL+"/api/me"); err != nil || status != 200 {
		t.Errorf("after an unsupported LogoutEverywhere: %d %v", status, err)
	}
}

// TestRealServerLogoutEverywhereDPoP: a client with a DPoP key logs out
// everywhere with a proof of its key, which the server requires of a bound
// session's refresh token.
func TestRealServerLogoutEverywhereDPoP(t *testing.T) {
	rs := newRealServer(t, server.Config{AccessTTL: time.Minute})
	c1 := dpopLogin(t, rs, client.JSONAPI(rs.URL), nil, client.Config{})
	c2 := rs.login(t, client.Config{})
	other, err := c2.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.LogoutEverywhere(t.Context()); err != nil {
		t.Fatalf("LogoutEverywhere: %v", err)
	}
	if _, err := client.JSONAPI(rs.URL).Refresh(t.Context(), other.RefreshToken); !errors.Is(err, client.ErrInvalidGrant) {
		t.Errorf("refreshing the other session: %v", err)
	}
}
