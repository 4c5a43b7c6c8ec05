package assertion

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/silentrefresh/silentrefresh/claims"
)

// Issuer is one trusted issuer of assertions.
type Issuer struct {
	// Name is the "iss" its assertions carry, compared byte for byte
	// (RFC 3986 simple string comparison, as rule 1 asks).
	Name string
	// Keys verify its assertions.
	Keys KeySet
	// Claims are the names of the claims copied from its assertions into
	// the session's access tokens; nil copies none. Reserved names
	// (claims.Reserved) cannot be listed.
	Claims []string
	// RawSubject makes the session's subject the assertion's "sub" as it
	// is. By default it is "NAME|sub", so that two issuers, or an issuer
	// and the built-in users, can never open a session for one another's
	// users.
	RawSubject bool
}

// Subject is the session subject of an assertion's sub.
func (i Issuer) Subject(sub string) string {
	if i.RawSubject {
		return sub
	}
	return i.Name + "|" + sub
}

// check reports a configuration mistake.
func (i Issuer) check() error {
	if i.Name == "" {
		return errors.New("assertion: a trusted issuer needs a name")
	}
	if strings.Contains(i.Name, "|") {
		// Subjects are NAME|sub: "a|b" would share the namespace of "a".
		return fmt.Errorf("assertion: trusted issuer %q: a name cannot hold '|', the separator of session subjects", i.Name)
	}
	if i.Keys == nil {
		return fmt.Errorf("assertion: trusted issuer %q has no keys", i.Name)
	}
	for _, c := range i.Claims {
		if claims.IsReserved(c) {
			return fmt.Errorf("assertion: trusted issuer %q: claim %q is reserved and cannot be copied", i.Name, c)
		}
	}
	return nil
}

// ParseIssuer reads the value of `serve --trusted-issuer`:
//
//	NAME=https://app.example.com/.well-known/jwks.json   a JWKS URL
//	NAME=/etc/app/jwks.json                               a JWKS file
//	NAME=hs256:/etc/app/assertion.key                     an HS256 secret file
//
// The JWKS of a file is read now, that of a URL at the first assertion. A
// URL must be https, unless its host is a loopback address. The
// secret file's content is the secret, less one trailing newline; it must
// be at least MinHMACKeyLen bytes.
func ParseIssuer(flag string) (Issuer, error) {
	name, src, ok := strings.Cut(flag, "=")
	if !ok || name == "" || src == "" {
		return Issuer{}, fmt.Errorf("assertion: trusted issuer %q: want NAME=JWKS_FILE_OR_URL or NAME=hs256:SECRET_FILE", flag)
	}
	iss := Issuer{Name: name}
	switch {
	case strings.HasPrefix(src, "hs256:"):
		b, err := os.ReadFile(src[len("hs256:"):])
		if err != nil {
			return Issuer{}, fmt.Errorf("assertion: trusted issuer %q: %w", name, err)
		}
		b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
		ks, err := HMACKeySet(b)
		if err != nil {
			return Issuer{}, fmt.Errorf("assertion: trusted issuer %q: %w", name, err)
		}
		iss.Keys = ks
	case strings.HasPrefix(src, "https://"), strings.HasPrefix(src, "http://"):
		u, err := url.Parse(src)
		if err != nil || u.Host == "" {
			return Issuer{}, fmt.Errorf("assertion: trusted issuer %q: bad JWKS URL %q", name, src)
		}
		if u.Scheme == "http" && !loopback(u.Hostname()) {
			return Issuer{}, fmt.Errorf("assertion: trusted issuer %q: a JWKS URL must be https (http only on a loopback address): keys fetched in the clear can be replaced on the way", name)
		}
		iss.Keys = NewRemoteKeySet(src, nil)
	default:
		b, err := os.ReadFile(src)
		if err != nil {
			return Issuer{}, fmt.Errorf("assertion: trusted issuer %q: %w", name, err)
		}
		keys, err := ParseJWKS(b)
		if err != nil {
			return Issuer{}, fmt.Errorf("assertion: trusted issuer %q: %s: %w", name, src, err)
		}
		iss.Keys = NewStaticKeySet(keys...)
	}
	return iss, nil
}

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
