package client

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// maxBody bounds what is read of a token endpoint's answer.
const maxBody = 1 << 20

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
