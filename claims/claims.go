// Package claims holds the extra claims an access token carries besides its
// registered ones: the per-user claims of built-in users, the allow-listed
// claims of a JWT bearer assertion, the claims an Authenticator returns.
// It decides which names may be set and how large a set may be.
package claims

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxSize is the largest Set, in bytes of its JSON encoding, that may go
// into an access token. Access tokens travel in every request header; 4 KiB
// of claims keeps them well under common header limits.
const MaxSize = 4 << 10

// MaxNameLen bounds the length of a claim name.
const MaxNameLen = 64

// Reserved are the claim names the server sets itself. A Set may not hold
// any of them: an assertion or a user record can never choose the subject,
// the session, the audience or the scope of a token.
var Reserved = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "cnf", "client_id", "scope"}

// ErrInvalid is wrapped by every error of Validate and Parse.
var ErrInvalid = errors.New("claims: invalid")

// Set is a set of extra claims: claim name to JSON value (string, number,
// bool, nil, []any or map[string]any, as encoding/json decodes them). The
// nil Set is empty.
type Set map[string]any

// IsReserved reports whether name is one of Reserved.
func IsReserved(name string) bool { return slices.Contains(Reserved, name) }

// Validate checks that s may go into an access token: no reserved names,
// names of 1 to MaxNameLen printable bytes, values JSON can encode, and at
// most MaxSize bytes of JSON in all. Errors wrap ErrInvalid and name the
// claim at fault.
func Validate(s Set) error {
	for _, name := range slices.Sorted(maps.Keys(s)) {
		if err := validName(name); err != nil {
			return err
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("%w: not encodable as JSON: %v", ErrInvalid, err)
	}
	if len(b) > MaxSize {
		return fmt.Errorf("%w: %d bytes of JSON, over the limit of %d", ErrInvalid, len(b), MaxSize)
	}
	return nil
}

func validName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty claim name", ErrInvalid)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: claim name %.20q… is longer than %d bytes", ErrInvalid, name, MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: claim name %q is not UTF-8", ErrInvalid, name)
	case IsReserved(name):
		return fmt.Errorf("%w: claim %q is reserved: the server sets it", ErrInvalid, name)
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || r == '=' {
			return fmt.Errorf("%w: claim name %q contains a space, '=' or a control character", ErrInvalid, name)
		}
	}
	return nil
}

// Merge returns the union of the sets, later sets winning for a name that
// several hold. It returns nil when every set is empty.
func Merge(sets ...Set) Set {
	var out Set
	for _, s := range sets {
		if len(s) == 0 {
			continue
		}
		if out == nil {
			out = make(Set, len(s))
		}
		maps.Copy(out, s)
	}
	return out
}

// Pick returns the members of s named in allowed, or nil if there are none.
func Pick(s map[string]any, allowed []string) Set {
	var out Set
	for _, name := range allowed {
		if v, ok := s[name]; ok {
			if out == nil {
				out = Set{}
			}
			out[name] = v
		}
	}
	return out
}

// ParseAssignment reads one NAME=VALUE of the command line
// (`--set roles=admin,editor`):
//
//	tenant=acme             "tenant": "acme"
//	roles=admin,editor      "roles": ["admin", "editor"]
//	roles=[admin]           "roles": ["admin"]          (a list of one)
//	level=json:3            "level": 3                   (any JSON value)
//
// A value with a comma, or in square brackets, is a list of strings; a value
// after "json:" is decoded as JSON. Errors wrap ErrInvalid.
func ParseAssignment(a string) (string, any, error) {
	name, value, ok := strings.Cut(a, "=")
	if !ok {
		return "", nil, fmt.Errorf("%w: %q is not NAME=VALUE", ErrInvalid, a)
	}
	if err := validName(name); err != nil {
		return "", nil, err
	}
	switch {
	case strings.HasPrefix(value, "json:"):
		var v any
		if err := json.Unmarshal([]byte(value[len("json:"):]), &v); err != nil {
			return "", nil, fmt.Errorf("%w: claim %q: value is not JSON: %v", ErrInvalid, name, err)
		}
		return name, v, nil
	case strings.HasPrefix(value, "[") && strings.HasSuffix(value, "]"):
		return name, list(value[1 : len(value)-1]), nil
	case strings.Contains(value, ","):
		return name, list(value), nil
	}
	return name, value, nil
}

func list(v string) []any {
	out := []any{}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Encode returns the JSON of s, "{}" for an empty set.
func Encode(s Set) ([]byte, error) {
	if len(s) == 0 {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("claims: encode: %w", err)
	}
	return b, nil
}

// Decode reads a Set written by Encode. An empty input is the empty set.
func Decode(b []byte) (Set, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var s Set
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("claims: decode: %w", err)
	}
	if len(s) == 0 {
		return nil, nil
	}
	return s, nil
}
