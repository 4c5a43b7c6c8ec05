package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// OAuth2Refresher talks to an RFC 6749 token endpoint.
type OAuth2Refresher struct {
	tokenURL string
	clientID string
	o        oauth2Options
}

// OAuth2 returns a Refresher for the RFC 6749 token endpoint at tokenURL
// (form-encoded requests, snake_case answers). clientID may be empty for a
// server that does not need one.
func OAuth2(tokenURL, clientID string, opts ...OAuth2Option) *OAuth2Refresher {
	return &OAuth2Refresher{tokenURL: tokenURL, clientID: clientID, o: newOAuth2Options(opts)}
}

// Refresh exchanges refreshToken (grant_type=refresh_token).
func (r *OAuth2Refresher) Refresh(ctx context.Context, refreshToken string) (Grant, error) {
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	return r.token(ctx, v)
}

// Login logs in with a username and password (grant_type=password) and
// returns the session's first tokens, their Expiry measured on time.Now
// from the moment the request was sent.
// A login the server refuses as overloaded (503, before checking any
// password) is tried again after its Retry-After, a few times, within ctx.
func (r *OAuth2Refresher) Login(ctx context.Context, username, password string) (Tokens, error) {
	v := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}}
	return retryLogin(ctx, func(ctx context.Context) (Tokens, error) {
		sent := time.Now()
		g, err := r.token(ctx, v)
		if err != nil {
			return Tokens{}, err
		}
		return g.tokens(sent, ""), nil
	})
}

// Revoke revokes refreshToken at the revocation endpoint set with
// WithRevocationURL (RFC 7009).
func (r *OAuth2Refresher) Revoke(ctx context.Context, refreshToken string) error {
	if r.o.revokeURL == "" {
		return errors.New("client: oauth2: no revocation URL configured (WithRevocationURL)")
	}
	v := url.Values{"token": {refreshToken}, "token_type_hint": {"refresh_token"}}
	resp, err := r.post(ctx, r.o.revokeURL, v)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return retrieveError(resp)
	}
	return nil
}

func (r *OAuth2Refresher) post(ctx context.Context, u string, v url.Values) (*http.Response, error) {
	if r.clientID != "" && r.o.clientSecret == "" {
		v.Set("client_id", r.clientID)
	}
	if len(r.o.scopes) > 0 {
		v.Set("scope", strings.Join(r.o.scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(v.Encode()))
	if err != nil {
		return nil, fmt.Errorf("client: oauth2: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if r.o.clientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(r.clientID), url.QueryEscape(r.o.clientSecret))
	}
	return sendProved(r.o.hc, req)
}

func (r *OAuth2Refresher) token(ctx context.Context, v url.Values) (Grant, error) {
	resp, err := r.post(ctx, r.tokenURL, v)
	if err != nil {
		return Grant{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return Grant{}, retrieveError(resp)
	}
	var body struct {
		AccessToken  string  `json:"access_token"`
		TokenType    string  `json:"token_type"`
		RefreshToken string  `json:"refresh_token"`
		ExpiresIn    seconds `json:"expires_in"`
		Error        string  `json:"error"`
	}
	if err := decode(resp, &body); err != nil {
		return Grant{}, err
	}
	if body.Error != "" {
		return Grant{}, retrieveError(resp)
	}
	typ, err := grantType(ctx, body.TokenType)
	if err != nil {
		return Grant{}, fmt.Errorf("client: oauth2: %w", err)
	}
	return Grant{
		AccessToken:  body.AccessToken,
		RefreshToken: body.RefreshToken,
		TokenType:    typ,
		ExpiresIn:    time.Duration(body.ExpiresIn),
	}, nil
}
