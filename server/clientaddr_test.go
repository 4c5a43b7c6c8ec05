package server

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	s := &Server{}
	for remote, want := range map[string]string{
		"192.0.2.7:51234":   "192.0.2.7",
		"[2001:db8::1]:443": "2001:db8::1",
		"[::1]:8080":        "::1",
		"[fe80::1%eth0]:9":  "fe80::1%eth0",
		"192.0.2.7":         "192.0.2.7",
		"2001:db8::1":       "2001:db8::1",
		"[2001:db8::2]":     "2001:db8::2",
		"":                  "",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		if got := s.clientAddr(r); got != want {
			t.Errorf("clientAddr(%q) = %q, want %q", remote, got, want)
		}
	}
}

// TestClientAddrBehindTrustedProxies: forwarding headers count only when a
// trusted proxy sent them, and then only the hops it and other trusted
// proxies vouch for.
func TestClientAddrBehindTrustedProxies(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:f::/48"),
	}}}
	for _, tc := range []struct {
		name, remote string
		header       []string
		want         string
	}{
		{"untrusted peer spoofing X-Forwarded-For", "203.0.113.9:5000", []string{"X-Forwarded-For", "198.51.100.1"}, "203.0.113.9"},
		{"untrusted peer spoofing Forwarded", "203.0.113.9:5000", []string{"Forwarded", "for=198.51.100.1"}, "203.0.113.9"},
		{"untrusted IPv6 peer", "[2001:db8:e::1]:443", []string{"X-Forwarded-For", "198.51.100.1"}, "2001:db8:e::1"},
		{"trusted proxy, one hop", "10.0.0.2:80", []string{"X-Forwarded-For", "198.51.100.1"}, "198.51.100.1"},
		{"client prepends a spoofed hop", "10.0.0.2:80", []string{"X-Forwarded-For", "1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"two trusted proxies", "10.0.0.2:80", []string{"X-Forwarded-For", "1.2.3.4, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"headers on two lines", "10.0.0.2:80", []string{"X-Forwarded-For", "1.2.3.4", "X-Forwarded-For", "198.51.100.1"}, "198.51.100.1"},
		{"trusted proxy without a header", "10.0.0.2:80", nil, "10.0.0.2"},
		{"only trusted hops", "10.0.0.2:80", []string{"X-Forwarded-For", "10.1.1.1"}, "10.1.1.1"},
		{"garbage hop", "10.0.0.2:80", []string{"X-Forwarded-For", "1.2.3.4, not-an-ip"}, "10.0.0.2"},
		{"IPv6 trusted proxy, Forwarded", "[2001:db8:f::1]:443", []string{"Forwarded", `for=1.2.3.4, for="[2001:db8:cafe::17]:4711";proto=https`}, "2001:db8:cafe::17"},
		{"Forwarded and X-Forwarded-For disagree", "10.0.0.2:80", []string{"Forwarded", "for=198.51.100.2", "X-Forwarded-For", "198.51.100.1"}, "10.0.0.2"},
		{"Forwarded element without for", "10.0.0.2:80", []string{"Forwarded", "for=1.2.3.4, proto=https"}, "10.0.0.2"},
		{"IPv4 hop with a port", "10.0.0.2:80", []string{"Forwarded", `for="198.51.100.3:1234"`}, "198.51.100.3"},
		{"IPv4-mapped trusted peer", "[::ffff:10.0.0.2]:80", []string{"X-Forwarded-For", "198.51.100.1"}, "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for i := 0; i+1 < len(tc.header); i += 2 {
				r.Header.Add(tc.header[i], tc.header[i+1])
			}
			if got := s.clientAddr(r); got != tc.want {
				t.Errorf("clientAddr = %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzClientAddr: whatever a peer sends in the forwarding headers, the
// client address is the peer's own or an address a hop names, never
// anything else, and an untrusted peer's headers count for nothing.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"198.51.100.1", "1.2.3.4, 10.0.0.9", `for="[2001:db8::1]:80";proto=https, for=unknown`,
		"", ",,,", "for=", `for="`, "[::1", "10.0.0.1:99999", "\x00", "for=_hidden;by=10.0.0.1"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	f.Fuzz(func(t *testing.T, header string, trustedPeer bool) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "203.0.113.5:4000"
		if trustedPeer {
			r.RemoteAddr = "10.0.0.2:4000"
		}
		r.Header.Set("X-Forwarded-For", header)
		r.Header.Set("Forwarded", header)
		got := s.clientAddr(r)
		peer := remoteHost(r.RemoteAddr)
		if !trustedPeer {
			if got != peer {
				t.Fatalf("untrusted peer: client %q from headers %q", got, header)
			}
			return
		}
		if got == peer {
			return
		}
		if _, err := netip.ParseAddr(got); err != nil {
			t.Fatalf("client %q from %q is not an address", got, header)
		}
	})
}
