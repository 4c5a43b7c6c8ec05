package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// JSONAPIRefresher talks to the JSON API of a silentrefresh server
// (POST /api/auth/login, /api/auth/refresh, /api/auth/logout).
type JSONAPIRefresher struct {
	base string
	o    wireOptions
}

// JSONAPI returns a Refresher for the JSON API at baseURL, e.g.
// "https://auth.example.com". It takes the options common to both
// refreshers ([WithHTTPClient]); the OAuth2-only ones do not compile here.
func JSONAPI(baseURL string, opts ...JSONAPIOption) *JSONAPIRefresher {
	return &JSONAPIRefresher{base: strings.TrimRight(baseURL, "/"), o: newJSONAPIOptions(opts)}
}

// jsonGrant is the JSON API's answer to login and refresh.
type jsonGrant struct {
	AccessToken      string  `json:"accessToken"`
	RefreshToken     string  `json:"refreshToken"`
	TokenType        string  `json:"tokenType"`
	ExpiresIn        seconds `json:"expiresIn"`
	RefreshExpiresIn seconds `json:"refreshExpiresIn"`
}

// Refresh exchanges refreshToken (POST /api/auth/refresh).
func (r *JSONAPIRefresher) Refresh(ctx context.Context, refreshToken string) (Grant, error) {
	return r.grant(ctx, "/api/auth/refresh", map[string]string{"refreshToken": refreshToken})
}

// Login logs in with a username and password (POST /api/auth/login) and
// returns the session's first tokens, their Expiry measured on time.Now
// from the moment the request was sent.
// A login the server refuses as overloaded (503, before checking any
// password) is tried again after its Retry-After, a few times, within ctx.
func (r *JSONAPIRefresher) Login(ctx context.Context, username, password string) (Tokens, error) {
	return retryLogin(ctx, func(ctx context.Context) (Tokens, error) {
		sent := time.Now()
		g, err := r.grant(ctx, "/api/auth/login", map[string]string{"username": username, "password": password})
		if err != nil {
			return Tokens{}, err
		}
		return g.tokens(sent, ""), nil
	})
}

// Revoke ends the session of refreshToken (POST /api/auth/logout).
func (r *JSONAPIRefresher) Revoke(ctx context.Context, refreshToken string) error {
	return r.logout(ctx, map[string]any{"refreshToken": refreshToken})
}

// logout posts body to /api/auth/logout; any answer but a 2xx is a
// *RetrieveError.
func (r *JSONAPIRefresher) logout(ctx context.Context, body map[string]any) error {
	resp, err := r.post(ctx, "/api/auth/logout", body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return retrieveError(resp)
	}
	return nil
}

func (r *JSONAPIRefresher) post(ctx context.Context, path string, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("client: json api: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+path, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("client: json api: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return sendProved(r.o.hc, req)
}

func (r *JSONAPIRefresher) grant(ctx context.Context, path string, body any) (Grant, error) {
	resp, err := r.post(ctx, path, body)
	if err != nil {
		return Grant{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return Grant{}, retrieveError(resp)
	}
	var g jsonGrant
	if err := decode(resp, &g); err != nil {
		return Grant{}, err
	}
	typ, err := grantType(ctx, g.TokenType)
	if err != nil {
		return Grant{}, fmt.Errorf("client: json api: %w", err)
	}
	return Grant{
		AccessToken:      g.AccessToken,
		RefreshToken:     g.RefreshToken,
		TokenType:        typ,
		ExpiresIn:        time.Duration(g.ExpiresIn),
		RefreshExpiresIn: time.Duration(g.RefreshExpiresIn),
	}, nil
}
