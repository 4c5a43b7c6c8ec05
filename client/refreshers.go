package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Option configures a refresher.
type Option func(*options)

type options struct {
	hc           *http.Client
	now          func() time.Time
	clientSecret string
	scopes       []string
	revokeURL    string
}

// WithHTTPClient sets the http.Client the refresher sends its requests
// with; the default is one with http.DefaultTransport. It must not be an
// http.Client made by a Client.
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.hc = hc } }

// WithClock sets the clock that login helpers measure expiry with; the
// default is time.Now. (A Client measures refreshes with its own clock.)
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithClientSecret makes an OAuth2 refresher authenticate as a confidential
// client with HTTP Basic authentication (RFC 6749 section 2.3.1).
func WithClientSecret(secret string) Option { return func(o *options) { o.clientSecret = secret } }

// WithScopes sets the scope an OAuth2 refresher asks for.
func WithScopes(scopes ...string) Option { return func(o *options) { o.scopes = scopes } }

// WithRevocationURL sets an OAuth2 refresher's RFC 7009 revocation endpoint,
// used by Revoke and Client.Logout.
func WithRevocationURL(u string) Option { return func(o *options) { o.revokeURL = u } }

func newOptions(opts []Option) options {
	o := options{hc: &http.Client{}, now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// maxBody bounds what is read of a token endpoint's answer.
const maxBody = 1 << 20

// OAuth2Refresher talks to an RFC 6749 token endpoint.
type OAuth2Refresher struct {
	tokenURL string
	clientID string
	o        options
}

// OAuth2 returns a Refresher for the RFC 6749 token endpoint at tokenURL
// (form-encoded requests, snake_case answers). clientID may be empty for a
// server that does not need one.
func OAuth2(tokenURL, clientID string, opts ...Option) *OAuth2Refresher {
	return &OAuth2Refresher{tokenURL: tokenURL, clientID: clientID, o: newOptions(opts)}
}

// Refresh exchanges refreshToken (grant_type=refresh_token).
func (r *OAuth2Refresher) Refresh(ctx context.Context, refreshToken string) (Grant, error) {
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	return r.token(ctx, v)
}

// Login logs in with a username and password (grant_type=password) and
// returns the session's first tokens.
func (r *OAuth2Refresher) Login(ctx context.Context, username, password string) (Tokens, error) {
	v := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}}
	sent := r.o.now()
	g, err := r.token(ctx, v)
	if err != nil {
		return Tokens{}, err
	}
	return g.tokens(sent, ""), nil
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
	return send(r.o.hc, req)
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
	if body.TokenType != "" && !strings.EqualFold(body.TokenType, "Bearer") {
		return Grant{}, fmt.Errorf("client: oauth2: unsupported token_type %q", body.TokenType)
	}
	return Grant{
		AccessToken:  body.AccessToken,
		RefreshToken: body.RefreshToken,
		TokenType:    "Bearer",
		ExpiresIn:    time.Duration(body.ExpiresIn),
	}, nil
}

// JSONAPIRefresher talks to the JSON API of a silentrefresh server
// (POST /api/auth/login, /api/auth/refresh, /api/auth/logout).
type JSONAPIRefresher struct {
	base string
	o    options
}

// JSONAPI returns a Refresher for the JSON API at baseURL, e.g.
// "https://auth.example.com". Of the options, WithHTTPClient and WithClock
// apply.
func JSONAPI(baseURL string, opts ...Option) *JSONAPIRefresher {
	return &JSONAPIRefresher{base: strings.TrimRight(baseURL, "/"), o: newOptions(opts)}
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
// returns the session's first tokens.
func (r *JSONAPIRefresher) Login(ctx context.Context, username, password string) (Tokens, error) {
	sent := r.o.now()
	g, err := r.grant(ctx, "/api/auth/login", map[string]string{"username": username, "password": password})
	if err != nil {
		return Tokens{}, err
	}
	return g.tokens(sent, ""), nil
}

// Revoke ends the session of refreshToken (POST /api/auth/logout).
func (r *JSONAPIRefresher) Revoke(ctx context.Context, refreshToken string) error {
	resp, err := r.post(ctx, "/api/auth/logout", map[string]string{"refreshToken": refreshToken})
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
	return send(r.o.hc, req)
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
	if g.TokenType != "" && !strings.EqualFold(g.TokenType, "Bearer") {
		return Grant{}, fmt.Errorf("client: json api: unsupported tokenType %q", g.TokenType)
	}
	return Grant{
		AccessToken:      g.AccessToken,
		RefreshToken:     g.RefreshToken,
		TokenType:        "Bearer",
		ExpiresIn:        time.Duration(g.ExpiresIn),
		RefreshExpiresIn: time.Duration(g.RefreshExpiresIn),
	}, nil
}

// send sends req and wraps a failure to get an answer in a *NetworkError
// that tells whether the request was written.
func send(hc *http.Client, req *http.Request) (*http.Response, error) {
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Store(true)
			}
		},
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &NetworkError{Sent: wrote.Load(), Err: err}
	}
	return resp, nil
}

func decode(resp *http.Response, v any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return &NetworkError{Sent: true, Err: fmt.Errorf("read answer: %w", err)}
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("client: decode token endpoint answer (status %d): %w", resp.StatusCode, err)
	}
	return nil
}

// retrieveError reads an error answer.
func retrieveError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	e := &RetrieveError{StatusCode: resp.StatusCode, Header: resp.Header, Body: b, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var body struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		ErrorURI         string `json:"error_uri"`
	}
	if json.Unmarshal(b, &body) == nil {
		e.ErrorCode, e.ErrorDescription, e.ErrorURI = body.Error, body.ErrorDescription, body.ErrorURI
	}
	return e
}

// retryAfter parses a Retry-After value: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, 24*time.Hour)
		}
	}
	return 0
}

// seconds decodes a JSON number of seconds, or a string holding one (some
// servers send expires_in quoted), into a Duration.
type seconds time.Duration

// UnmarshalJSON accepts 3600, 3600.5 and "3600".
func (s *seconds) UnmarshalJSON(b []byte) error {
	str := strings.Trim(string(b), `"`)
	if str == "" || str == "null" {
		*s = 0
		return nil
	}
	f, err := strconv.ParseFloat(str, 64)
	if err != nil || f < 0 || math.IsNaN(f) || f > float64(math.MaxInt64/int64(time.Second)) {
		return fmt.Errorf("client: bad number of seconds %q", str)
	}
	*s = seconds(f * float64(time.Second))
	return nil
}
