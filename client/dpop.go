package client

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/silentrefresh/silentrefresh/dpop"
)

// GenerateDPoPKey returns a new ECDSA P-256 key for Config.DPoP: proofs
// signed with it are ES256, the algorithm every DPoP server supports. A
// FileStore keeps one for its session instead (FileStore.DPoPKey).
func GenerateDPoPKey() (crypto.Signer, error) {
	return dpop.GenerateKey(dpop.AlgES256)
}

// prover signs the DPoP proofs (RFC 9449) of one Client and remembers the
// nonces servers ask for. It is safe for concurrent use.
type prover struct {
	s   *dpop.Signer
	now func() time.Time

	// nonces holds the last DPoP-Nonce each origin sent, by
	// "scheme://host".
	nonces sync.Map
	// last caches the ath and Authorization header of the access token
	// signed for last, so the hot path hashes each token once.
	last atomic.Pointer[boundToken]
}

type boundToken struct {
	token, ath, header string
}

func newProver(key crypto.Signer, now func() time.Time) (*prover, error) {
	s, err := dpop.NewSigner(key)
	if err != nil {
		return nil, fmt.Errorf("client: Config.DPoP: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &prover{s: s, now: now}, nil
}

func origin(u *url.URL) string { return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) }

// sign sets a fresh proof for req in its DPoP header. With an access
// token, the proof carries its hash and the Authorization header is set to
// "DPoP <token>" (RFC 9449 section 7.1).
func (p *prover) sign(req *http.Request, accessToken string) error {
	var ath string
	if accessToken != "" {
		b := p.last.Load()
		if b == nil || b.token != accessToken {
			b = &boundToken{token: accessToken, ath: dpop.AccessTokenHash(accessToken), header: "DPoP " + accessToken}
			p.last.Store(b)
		}
		ath = b.ath
		req.Header.Set("Authorization", b.header)
	}
	var nonce string
	if v, ok := p.nonces.Load(origin(req.URL)); ok {
		nonce = v.(string)
	}
	proof, err := p.s.Proof(req.Method, dpop.HTU(req.URL), ath, nonce, p.now())
	if err != nil {
		return fmt.Errorf("client: sign DPoP proof: %w", err)
	}
	req.Header.Set("DPoP", proof)
	return nil
}

// learn remembers the nonce a response sends for its origin.
func (p *prover) learn(req *http.Request, resp *http.Response) {
	if n := resp.Header.Get("DPoP-Nonce"); n != "" {
		p.nonces.Store(origin(req.URL), n)
	}
}

// nonceRequested reports whether resp asks for a proof with the nonce it
// sends (RFC 9449 sections 8 and 9): a 400 use_dpop_nonce from a token
// endpoint or a 401 with a DPoP use_dpop_nonce challenge from a resource
// server. It reads at most 4 KiB of a 400's body and puts it back.
func nonceRequested(resp *http.Response) bool {
	if resp.Header.Get("DPoP-Nonce") == "" {
		return false
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return challengeError(resp.Header, "DPoP") == dpop.CodeUseNonce
	case http.StatusBadRequest:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
		var e struct {
			Error string `json:"error"`
		}
		return json.Unmarshal(b, &e) == nil && e.Error == dpop.CodeUseNonce
	}
	return false
}

// challengeError returns the error parameter of the first WWW-Authenticate
// challenge of the given scheme, "" when it has none, and "-" when there is
// no such challenge.
func challengeError(h http.Header, scheme string) string {
	for _, ch := range h.Values("Www-Authenticate") {
		s, params, _ := strings.Cut(strings.TrimSpace(ch), " ")
		if !strings.EqualFold(s, scheme) {
			continue
		}
		i := strings.Index(params, "error=")
		if i < 0 {
			return ""
		}
		return strings.Trim(strings.SplitN(params[i+len("error="):], ",", 2)[0], `" `)
	}
	return "-"
}

type proverKey struct{}

// withProver returns ctx carrying p, for the refreshers of this package:
// the Client hands its key to them this way.
func withProver(ctx context.Context, p *prover) context.Context {
	if p == nil {
		return ctx
	}
	return context.WithValue(ctx, proverKey{}, p)
}

func proverFrom(ctx context.Context) *prover {
	p, _ := ctx.Value(proverKey{}).(*prover)
	return p
}

// sendProved sends a token endpoint request with a fresh DPoP proof when
// ctx carries a prover, and once more with the server's nonce if it asks
// for one; without a prover it is send.
func sendProved(hc *http.Client, req *http.Request) (*http.Response, error) {
	p := proverFrom(req.Context())
	if p == nil {
		return send(hc, req)
	}
	for attempt := 0; ; attempt++ {
		if err := p.sign(req, ""); err != nil {
			return nil, err
		}
		resp, err := send(hc, req)
		if err != nil {
			return nil, err
		}
		p.learn(req, resp)
		if attempt > 0 || !nonceRequested(resp) || (req.Body != nil && req.GetBody == nil) {
			return resp, nil
		}
		discard(resp)
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, fmt.Errorf("client: resend with DPoP nonce: %w", err)
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

// tokenTypeDPoP is the token_type of a DPoP-bound access token (RFC 9449
// section 5).
const tokenTypeDPoP = "DPoP"

// grantType checks the token type a token endpoint answered and returns
// it normalised: "Bearer" (also for none), or "DPoP" when the request
// carried a proof.
func grantType(ctx context.Context, typ string) (string, error) {
	switch {
	case typ == "" || strings.EqualFold(typ, "Bearer"):
		return "Bearer", nil
	case strings.EqualFold(typ, tokenTypeDPoP) && proverFrom(ctx) != nil:
		return tokenTypeDPoP, nil
	case strings.EqualFold(typ, tokenTypeDPoP):
		return "", errors.New("the server issued a DPoP-bound token, but no DPoP key is configured (Config.DPoP)")
	}
	return "", fmt.Errorf("unsupported token type %q", typ)
}

// authorize sets the credentials of st on req: a DPoP-bound token with a
// fresh proof, or a bearer token.
func (c *Client) authorize(req *http.Request, st *state) error {
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	if c.prover != nil && st.tok.TokenType == tokenTypeDPoP {
		return c.prover.sign(req, st.tok.AccessToken)
	}
	// The key is canonical already: skip Set's canonicalisation.
	req.Header["Authorization"] = []string{st.header}
	return nil
}

// sendAuthorized sends r, a clone of orig that the caller owns, with the
// credentials of st. With DPoP, a 401 that asks for a server nonce (RFC
// 9449 section 9) is answered once more, with a proof that carries it, when
// orig's body can be sent again.
func (c *Client) sendAuthorized(orig, r *http.Request, st *state) (*http.Response, error) {
	if err := c.authorize(r, st); err != nil {
		closeBody(r)
		return nil, err
	}
	resp, err := c.base.RoundTrip(r)
	if err != nil || c.prover == nil {
		return resp, err
	}
	c.prover.learn(r, resp)
	if resp.StatusCode != http.StatusUnauthorized || !nonceRequested(resp) {
		return resp, nil
	}
	var body io.ReadCloser
	if orig.Body != nil && orig.Body != http.NoBody {
		if orig.GetBody == nil {
			return resp, nil
		}
		if body, err = orig.GetBody(); err != nil {
			return resp, nil
		}
	}
	discard(resp)
	r2 := orig.Clone(orig.Context())
	if body != nil {
		r2.Body = body
	}
	if err := c.authorize(r2, st); err != nil {
		closeBody(r2)
		return nil, err
	}
	resp, err = c.base.RoundTrip(r2)
	if err == nil {
		c.prover.learn(r2, resp)
	}
	return resp, err
}

// A Loginer logs a user in at a token endpoint and returns the session's
// first tokens. Both refreshers of this package are Loginers.
type Loginer interface {
	Login(ctx context.Context, username, password string) (Tokens, error)
}

// Login logs in through the Config's Refresher, which must be a Loginer,
// and starts the new session as SetTokens does. With Config.DPoP the login
// carries a proof, so the server binds the session to the key.
func (c *Client) Login(ctx context.Context, username, password string) (Tokens, error) {
	l, ok := c.cfg.Refresher.(Loginer)
	if !ok {
		return Tokens{}, fmt.Errorf("client: login: the Refresher (%T) cannot log in", c.cfg.Refresher)
	}
	t, err := l.Login(withProver(ctx, c.prover), username, password)
	if err != nil {
		return Tokens{}, err
	}
	if err := c.SetTokens(ctx, t); err != nil {
		return Tokens{}, err
	}
	return t, nil
}
