package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the address of the client that sent r, the key of the
// per-address login limits and the "remote" of log lines. It is the host
// of the request's peer, unless that peer is one of Config.TrustedProxies:
// then it is the rightmost hop of the Forwarded (RFC 7239) or
// X-Forwarded-For header that is not a trusted proxy itself; when both
// headers are present and name different clients, it is the peer's, for
// a proxy writes one of them and the client may have written the other.
// What a client writes in those headers counts for nothing unless a
// trusted proxy passed it on, and then only left of the hops it appended.
func (s *Server) clientAddr(r *http.Request) string {
	peer := remoteHost(r.RemoteAddr)
	if len(s.cfg.TrustedProxies) == 0 {
		return peer
	}
	ip, err := netip.ParseAddr(peer)
	if err != nil || !s.trustedProxy(ip) {
		return peer
	}
	fwd, xff := forwardedHops(r.Header)
	if fwd == nil {
		return s.hopsClient(peer, xff)
	}
	addr := s.hopsClient(peer, fwd)
	if xff != nil && s.hopsClient(peer, xff) != addr {
		// A proxy writes one of the two; the other came from the
		// client, and which is which cannot be told.
		return peer
	}
	return addr
}

// hopsClient is the rightmost of hops that is not a trusted proxy, peer
// when there is none.
func (s *Server) hopsClient(peer string, hops []string) string {
	addr := peer
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(hops[i])
		if err != nil {
			// A hop that is no address ("unknown", an obfuscated
			// name): the nearest trusted proxy is all that is known.
			return addr
		}
		if !s.trustedProxy(hop) {
			return hop.String()
		}
		addr = hop.String()
	}
	return addr
}

// trustedProxy reports whether ip is in one of Config.TrustedProxies.
func (s *Server) trustedProxy(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// remoteHost is the host of a RemoteAddr, without the port or an IPv6
// address's brackets. A RemoteAddr without a port is the host itself.
func remoteHost(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return strings.Trim(remote, "[]")
	}
	return host
}

// forwardedHops returns the client addresses the proxies recorded, the
// client first: the "for" parameters of the Forwarded headers, and the
// X-Forwarded-For lists, each hop with its port and brackets removed, nil
// for a header that is absent. A Forwarded element without "for" is an
// empty hop.
func forwardedHops(h http.Header) (fwd, xff []string) {
	for _, line := range h.Values("Forwarded") {
		for _, elem := range strings.Split(line, ",") {
			fwd = append(fwd, forwardedFor(elem))
		}
	}
	for _, line := range h.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(line, ",") {
			xff = append(xff, hostOfHop(strings.TrimSpace(hop)))
		}
	}
	return fwd, xff
}

// forwardedFor returns the "for" of one Forwarded element, e.g.
// `for="[2001:db8::17]:4711";proto=https`, or "" if it has none.
func forwardedFor(elem string) string {
	for _, pair := range strings.Split(elem, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "for") {
			return hostOfHop(strings.Trim(strings.TrimSpace(v), `"`))
		}
	}
	return ""
}

// hostOfHop strips the port and brackets of "192.0.2.1:80", "[::1]:80"
// or "[::1]"; a bare address is returned as it is.
func hostOfHop(hop string) string {
	if host, _, err := net.SplitHostPort(hop); err == nil {
		return host
	}
	return strings.Trim(hop, "[]")
}

// limitKey is the key of a client address in the login limits: an IPv4
// address itself, an IPv6 address its /64, which one host or customer
// usually holds whole (so rotating the low bits buys no fresh budget).
// Anything that is no address is its own key.
func limitKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	if ip = ip.Unmap().WithZone(""); ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}
