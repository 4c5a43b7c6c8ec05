package main

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/silentrefresh/silentrefresh/assertion"
	"github.com/silentrefresh/silentrefresh/server"
)

// adoptFlags are the flags of "serve" that let other logins and clients in:
// trusted assertion issuers and the client registry.
type adoptFlags struct {
	trusted         repeated
	assertionClaims repeated
	rawSubject      repeated
	registeredOnly  bool
}

// repeated is a repeatable flag whose values may hold commas.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, " ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func (a *adoptFlags) register(fs *flag.FlagSet) {
	fs.Var(&a.trusted, "trusted-issuer", "trust JWT bearer assertions (RFC 7523) of an issuer: NAME=JWKS_FILE_OR_URL (https, or http on loopback), or NAME=hs256:SECRET_FILE (repeatable); NAME is their iss")
	fs.Var(&a.assertionClaims, "assertion-claims", "claims copied from an issuer's assertions into access tokens: NAME=roles,tenant (repeatable)")
	fs.Var(&a.rawSubject, "raw-subject", "make the session subject of an issuer's assertions their sub as it is, not NAME|sub (repeatable)")
	fs.BoolVar(&a.registeredOnly, "registered-clients-only", false, "refuse /oauth2/ requests from clients not registered with 'silentrefresh client add' (the JSON API stays open)")
}

// apply reads the flags into cfg, or says which one is wrong.
func (a *adoptFlags) apply(cfg *server.Config) error {
	var issuers []assertion.Issuer
	for _, t := range a.trusted {
		iss, err := assertion.ParseIssuer(t)
		if err != nil {
			return fmt.Errorf("--trusted-issuer: %w", err)
		}
		if slices.ContainsFunc(issuers, func(o assertion.Issuer) bool { return o.Name == iss.Name }) {
			return fmt.Errorf("--trusted-issuer: %q is given twice", iss.Name)
		}
		issuers = append(issuers, iss)
	}
	byName := map[string]*assertion.Issuer{}
	for i := range issuers {
		byName[issuers[i].Name] = &issuers[i]
	}
	for _, c := range a.assertionClaims {
		name, list, ok := strings.Cut(c, "=")
		iss := byName[name]
		if !ok || iss == nil {
			return fmt.Errorf("--assertion-claims %q: want NAME=claim,claim with NAME a --trusted-issuer", c)
		}
		for _, cl := range strings.Split(list, ",") {
			if cl = strings.TrimSpace(cl); cl != "" && !slices.Contains(iss.Claims, cl) {
				iss.Claims = append(iss.Claims, cl)
			}
		}
	}
	for _, name := range a.rawSubject {
		iss := byName[name]
		if iss == nil {
			return fmt.Errorf("--raw-subject %q: not a --trusted-issuer", name)
		}
		iss.RawSubject = true
	}
	cfg.TrustedIssuers = issuers
	cfg.RegisteredClientsOnly = a.registeredOnly
	return nil
}
