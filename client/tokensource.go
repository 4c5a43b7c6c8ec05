package client

import (
	"context"

	"golang.org/x/oauth2"
)

// TokenSource returns an oauth2.TokenSource backed by c, for libraries that
// take one (gRPC credentials, cloud SDKs). Each Token call returns the
// current access token, waiting under ctx for a refresh when it has
// expired. The refresh token is not handed out: c alone rotates it.
func (c *Client) TokenSource(ctx context.Context) oauth2.TokenSource {
	return tokenSource{ctx: ctx, c: c}
}

type tokenSource struct {
	ctx context.Context
	c   *Client
}

// Token returns the current access token as an oauth2.Token.
func (s tokenSource) Token() (*oauth2.Token, error) {
	t, err := s.c.Token(s.ctx)
	if err != nil {
		return nil, err
	}
	typ := "Bearer"
	if t.TokenType == tokenTypeDPoP {
		typ = tokenTypeDPoP // usable only with a DPoP proof of the Client's key
	}
	return &oauth2.Token{AccessToken: t.AccessToken, TokenType: typ, Expiry: t.Expiry}, nil
}
