package server

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestForwardedHeaderTheProxyDoesNotWrite: behind a proxy that appends to
// X-Forwarded-For only (nginx, Caddy, Traefik, HAProxy's forwardfor), the
// client writes the Forwarded header itself, and a proxy that writes
// Forwarded passes a client's X-Forwarded-For on. A client rotating the
// header the proxy does not write must not become a new client address
// each time: when the two headers disagree neither can be believed, and
// the address is the nearest trusted proxy's.
func TestForwardedHeaderTheProxyDoesNotWrite(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	seen := map[string]bool{}
	for i := range 20 {
		for _, h := range [][2]string{
			{"Forwarded", fmt.Sprintf("for=198.51.100.%d", i)}, // the client's
			{"X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i)},  // the client's, before the proxy's Forwarded
		} {
			r := httptest.NewRequest("POST", "/api/auth/login", nil)
			r.RemoteAddr = "10.0.0.2:80"
			r.Header.Add(h[0], h[1])
			if h[0] == "Forwarded" {
				r.Header.Add("X-Forwarded-For", "203.0.113.66") // what nginx appended
			} else {
				r.Header.Add("Forwarded", "for=203.0.113.66") // what the proxy wrote
			}
			seen[s.clientAddr(r)] = true
		}
	}
	if len(seen) > 2 {
		t.Fatalf("one client became %d addresses by rotating a header the proxy does not write", len(seen))
	}
	// Both headers saying the same is believed.
	r := httptest.NewRequest("POST", "/", nil)
	r.RemoteAddr = "10.0.0.2:80"
	r.Header.Add("Forwarded", "for=203.0.113.66")
	r.Header.Add("X-Forwarded-For", "203.0.113.66")
	if got := s.clientAddr(r); got != "203.0.113.66" {
		t.Fatalf("both headers agreeing: %q", got)
	}
}
