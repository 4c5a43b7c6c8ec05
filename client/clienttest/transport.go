package clienttest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"time"

	"github.com/silentrefresh/silentrefresh/internal/clock"
)

// Transport returns an http.RoundTripper that serves requests with p
// in-process, whatever their host: no sockets, so it works inside a
// testing/synctest bubble. It reports GotConn and WroteRequest to an
// httptrace.ClientTrace like a real transport, and a dropped answer
// (DropNext) comes back as an error after WroteRequest, as a closed
// connection would.
func (p *Provider) Transport() http.RoundTripper { return transport{p} }

type transport struct{ p *Provider }

// dropWriter records an answer, or that it was dropped.
type dropWriter struct {
	*httptest.ResponseRecorder
	dropped bool
}

// RoundTrip serves req with the Provider.
func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	trace := httptrace.ContextClientTrace(ctx)
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{})
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("clienttest: read request body: %w", err)
		}
		body = b
	}
	if trace != nil && trace.WroteRequest != nil {
		trace.WroteRequest(httptrace.WroteRequestInfo{})
	}
	sreq := httptest.NewRequestWithContext(ctx, req.Method, req.URL.String(), bytes.NewReader(body))
	sreq.Header = req.Header.Clone()
	w := &dropWriter{ResponseRecorder: httptest.NewRecorder()}
	t.p.ServeHTTP(w, sreq)
	if w.dropped {
		return nil, errDropped
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	resp := w.Result()
	resp.Request = req
	return resp, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// Clock is a manual clock for Config.Now of a Provider and of a
// client.Client: the project's test clock. A Clock from NewClock stands
// still until advanced.
type Clock = clock.Fake

// NewClock returns a Clock set to t.
func NewClock(t time.Time) *Clock { return clock.NewFake(t) }
