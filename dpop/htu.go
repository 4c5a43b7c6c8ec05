package dpop

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// NormalizeURL returns the form of an http or https URL that htu values
// are compared in (RFC 9449 section 4.3, with the syntax-based and
// scheme-based normalization of RFC 3986 section 6.2.2 and 6.2.3): scheme
// and host in lower case, the default port (80, 443) dropped, an empty path
// as "/", percent-encodings in upper case and decoded where they stand for
// unreserved characters, dot segments removed, and no query or fragment.
// A URL with user information, or that is not absolute http(s), is an
// error.
func NormalizeURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("not an absolute http or https URL")
	}
	if u.User != nil {
		return "", errors.New("URL holds user information")
	}
	if u.Opaque != "" || u.Host == "" {
		return "", errors.New("URL has no host")
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" { // "host:" has an empty port: the default
		host += ":" + port
	}
	p, err := normalizePath(u.EscapedPath())
	if err != nil {
		return "", err
	}
	return scheme + "://" + host + p, nil
}

// normalizePath normalises the percent-encoding of an escaped path and
// removes its dot segments.
func normalizePath(p string) (string, error) {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return "", errors.New("URL path has a malformed percent-encoding")
		}
		v := unhex(p[i+1])<<4 | unhex(p[i+2])
		if isUnreserved(v) {
			b.WriteByte(v)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperHex[v>>4])
			b.WriteByte(upperHex[v&15])
		}
		i += 2
	}
	out := removeDotSegments(b.String())
	if out == "" {
		out = "/"
	}
	return out, nil
}

// removeDotSegments is RFC 3986 section 5.2.4.
func removeDotSegments(in string) string {
	var out []string
	trailing := false
	segs := strings.Split(in, "/")
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			trailing = last
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			trailing = last
		default:
			out = append(out, s)
			trailing = false
		}
	}
	r := strings.Join(out, "/")
	if trailing && !strings.HasSuffix(r, "/") {
		r += "/"
	}
	return r
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// RequestURL returns the URL a request was sent to, as its sender saw it,
// for comparison with a proof's htu: base (the server's public origin, such
// as "https://auth.example.com", when it sits behind a proxy) followed by
// the request's path. With base empty, the scheme comes from r.TLS and the
// host from r.Host.
func RequestURL(r *http.Request, base string) string {
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return strings.TrimRight(base, "/") + r.URL.EscapedPath()
}

// HTU returns the htu of a proof for a request to u: u without its query,
// fragment and user information (RFC 9449 section 4.2).
func HTU(u *url.URL) string {
	v := *u
	v.User, v.RawQuery, v.ForceQuery, v.Fragment, v.RawFragment = nil, "", false, "", ""
	return v.String()
}
