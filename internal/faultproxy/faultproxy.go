// Package faultproxy is a reverse proxy that injects the fault a silent
// refresh must survive: the answer to a refresh lost on the way back. It
// forwards a refresh request to the server, lets the server commit the
// rotation and answer, reads that whole answer, and then drops it: the
// client's connection is closed without a response. The client cannot tell
// whether its refresh token was rotated, and must retry inside the server's
// grace window to keep its session.
//
// Every other request passes through untouched, so a Proxy can stand in
// front of a whole server:
//
//	p, _ := faultproxy.New(faultproxy.Config{Target: serverURL})
//	go http.Serve(ln, p)
//	p.DropNext(1) // lose the next refresh answer
package faultproxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// Config configures a Proxy. Target is required.
type Config struct {
	// Target is the server's base URL, e.g. http://127.0.0.1:8080.
	Target *url.URL
	// Transport sends requests to Target; nil means a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	// Match selects the requests whose answers may be dropped, given the
	// request and its body (at most MaxBody bytes). Nil means IsRefresh.
	Match func(r *http.Request, body []byte) bool
	// DropRepeats makes the Proxy drop a request it has dropped before
	// (the same method, path and body: a client retrying with the same
	// refresh token) again. By default an answer is lost at most once per
	// request, so that the client's retry inside the grace window gets
	// through, as it would on a network that lost one packet.
	DropRepeats bool
	// OnDrop, when set, is called after each dropped answer with the
	// request whose answer was lost. It must not read the request's body.
	OnDrop func(r *http.Request)
}

// MaxBody is the largest request body a Proxy inspects; requests with a
// larger body are forwarded without being matched.
const MaxBody = 64 << 10

// Stats are a Proxy's counters since New.
type Stats struct {
	Forwarded uint64 // requests forwarded to the target
	Matched   uint64 // of which Config.Match selected
	Dropped   uint64 // answers the Proxy decided to drop (after reading them from the target)
	Repeats   uint64 // matched requests let through because their answer was dropped before
	Failed    uint64 // requests the target did not answer (answered 502)
}

// Proxy is a fault-injecting reverse proxy. It is an http.Handler and is
// safe for concurrent use. Create one with New.
type Proxy struct {
	cfg Config
	rp  *httputil.ReverseProxy

	pending atomic.Int64 // answers still to drop (DropNext)
	always  atomic.Bool  // drop every matched answer (DropAll)

	mu   sync.Mutex            // guards seen
	seen map[[32]byte]struct{} // hashes of requests whose answer was dropped

	forwarded, matched, dropped, repeats, failed atomic.Uint64
}

// maxSeen bounds how many dropped requests a Proxy remembers.
const maxSeen = 1 << 16

// errDropped is returned by ModifyResponse for an answer to lose.
var errDropped = errors.New("faultproxy: answer dropped")

// decisionKey is the context key of a matched request's *decision.
type decisionKey struct{}

// decision is what ServeHTTP learnt about a matched request.
type decision struct {
	key [32]byte // SHA-256 of method, path and body: the refresh token never stays in memory
}

// New returns a Proxy in front of cfg.Target. It drops nothing until
// DropNext or DropAll arms it.
func New(cfg Config) (*Proxy, error) {
	if cfg.Target == nil || cfg.Target.Scheme == "" || cfg.Target.Host == "" {
		return nil, errors.New("faultproxy: Config.Target must be an absolute URL")
	}
	if cfg.Match == nil {
		cfg.Match = IsRefresh
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	p := &Proxy{cfg: cfg, seen: make(map[[32]byte]struct{})}
	target := cfg.Target
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
		},
		Transport:      cfg.Transport,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
	}
	return p, nil
}

// DropNext arms the Proxy to drop the next n matched answers (n <= 0
// disarms it).
func (p *Proxy) DropNext(n int) { p.pending.Store(int64(max(n, 0))) }

// DropAll makes the Proxy drop every matched answer while on is true.
// (Unless Config.DropRepeats is set, a retry of a request whose answer
// was dropped still gets through.)
func (p *Proxy) DropAll(on bool) { p.always.Store(on) }

// Stats returns the Proxy's counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		Forwarded: p.forwarded.Load(),
		Matched:   p.matched.Load(),
		Dropped:   p.dropped.Load(),
		Repeats:   p.repeats.Load(),
		Failed:    p.failed.Load(),
	}
}

// ServeHTTP forwards r to the target, dropping its answer if the Proxy is
// armed and r matches.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.forwarded.Add(1)
	if r.Body != nil && r.Body != http.NoBody {
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
		if err != nil {
			http.Error(w, `{"error":"invalid_request","error_description":"faultproxy: reading the request body failed"}`, http.StatusBadRequest)
			return
		}
		if len(body) > MaxBody {
			// Too big to inspect: forward it whole, unmatched.
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
			p.rp.ServeHTTP(w, r)
			return
		}
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		if p.cfg.Match(r, body) {
			p.matched.Add(1)
			h := sha256.New()
			fmt.Fprintf(h, "%s %s\n", r.Method, r.URL.Path)
			h.Write(body)
			d := &decision{}
			h.Sum(d.key[:0])
			r = r.WithContext(context.WithValue(r.Context(), decisionKey{}, d))
		}
	} else if p.cfg.Match(r, nil) {
		p.matched.Add(1)
		r = r.WithContext(context.WithValue(r.Context(), decisionKey{}, &decision{key: sha256.Sum256([]byte(r.Method + " " + r.URL.Path + "\n"))}))
	}
	p.rp.ServeHTTP(w, r)
}

// modifyResponse decides, once the target has answered, whether to lose
// the answer. Only successful answers are dropped: those are the ones after
// which the server has rotated the token.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	d, _ := resp.Request.Context().Value(decisionKey{}).(*decision)
	if d == nil || resp.StatusCode/100 != 2 || !p.take(d.key) {
		return nil
	}
	// Read the whole answer: the server has finished its work and
	// committed the rotation. Then lose it.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return errDropped
}

// take reports whether the answer to the request with key should be
// dropped, and if so uses up one armed drop.
func (p *Proxy) take(key [32]byte) bool {
	if !p.always.Load() && p.pending.Load() <= 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.seen[key]; ok && !p.cfg.DropRepeats {
		p.repeats.Add(1)
		return false
	}
	if !p.always.Load() {
		for {
			n := p.pending.Load()
			if n <= 0 {
				return false
			}
			if p.pending.CompareAndSwap(n, n-1) {
				break
			}
		}
	}
	if len(p.seen) >= maxSeen {
		clear(p.seen)
	}
	p.seen[key] = struct{}{}
	p.dropped.Add(1)
	return true
}

// errorHandler closes the client's connection without an answer for a
// dropped answer, and answers 502 when the target could not be reached.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errDropped) {
		if p.cfg.OnDrop != nil {
			p.cfg.OnDrop(r)
		}
		// The server closes the connection (or resets the HTTP/2 stream)
		// without writing anything: the client sees its request sent and no
		// answer.
		panic(http.ErrAbortHandler)
	}
	p.failed.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadGateway)
	_, _ = io.WriteString(w, `{"error":"bad_gateway","error_description":"faultproxy: the server did not answer"}`)
}

// IsRefresh reports whether r exchanges a refresh token: a POST to the
// JSON API's /api/auth/refresh, or to an RFC 6749 token endpoint
// (/oauth2/token) with grant_type=refresh_token.
func IsRefresh(r *http.Request, body []byte) bool {
	if r.Method != http.MethodPost {
		return false
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/api/auth/refresh"):
		return true
	case strings.HasSuffix(r.URL.Path, "/oauth2/token"):
		v, err := url.ParseQuery(string(body))
		return err == nil && v.Get("grant_type") == "refresh_token"
	}
	return false
}
