package client

import "net/http"

// An OAuth2Option configures the refresher [OAuth2] returns. Options that
// only an RFC 6749 token endpoint understands ([WithClientSecret],
// [WithScopes], [WithRevocationURL]) are OAuth2Options and nothing else, so
// passing one to [JSONAPI] does not compile.
type OAuth2Option interface {
	applyOAuth2(*oauth2Options)
}

// A JSONAPIOption configures the refresher [JSONAPI] returns.
type JSONAPIOption interface {
	applyJSONAPI(*wireOptions)
}

// An Option configures either refresher: it is both an [OAuth2Option] and a
// [JSONAPIOption].
type Option interface {
	OAuth2Option
	JSONAPIOption
}

// wireOptions are the options both refreshers take.
type wireOptions struct {
	hc *http.Client
}

// oauth2Options are the OAuth2 refresher's options.
type oauth2Options struct {
	wireOptions
	clientSecret string
	scopes       []string
	revokeURL    string
}

// wireOption is an Option: it sets something both refreshers have.
type wireOption func(*wireOptions)

func (f wireOption) applyOAuth2(o *oauth2Options) { f(&o.wireOptions) }
func (f wireOption) applyJSONAPI(o *wireOptions)  { f(o) }

// oauth2Option is an OAuth2Option only.
type oauth2Option func(*oauth2Options)

func (f oauth2Option) applyOAuth2(o *oauth2Options) { f(o) }

// WithHTTPClient sets the http.Client a refresher sends its requests with;
// the default is one with http.DefaultTransport. It must not be an
// http.Client made by a Client.
func WithHTTPClient(hc *http.Client) Option {
	return wireOption(func(o *wireOptions) { o.hc = hc })
}

// WithClientSecret makes an OAuth2 refresher authenticate as a confidential
// client with HTTP Basic authentication (RFC 6749 section 2.3.1).
func WithClientSecret(secret string) OAuth2Option {
	return oauth2Option(func(o *oauth2Options) { o.clientSecret = secret })
}

// WithScopes sets the scope an OAuth2 refresher asks for.
func WithScopes(scopes ...string) OAuth2Option {
	return oauth2Option(func(o *oauth2Options) { o.scopes = scopes })
}

// WithRevocationURL sets an OAuth2 refresher's RFC 7009 revocation endpoint,
// used by Revoke and Client.Logout.
func WithRevocationURL(u string) OAuth2Option {
	return oauth2Option(func(o *oauth2Options) { o.revokeURL = u })
}

func newOAuth2Options(opts []OAuth2Option) oauth2Options {
	o := oauth2Options{wireOptions: wireOptions{hc: &http.Client{}}}
	for _, opt := range opts {
		opt.applyOAuth2(&o)
	}
	return o
}

func newJSONAPIOptions(opts []JSONAPIOption) wireOptions {
	o := wireOptions{hc: &http.Client{}}
	for _, opt := range opts {
		opt.applyJSONAPI(&o)
	}
	return o
}
