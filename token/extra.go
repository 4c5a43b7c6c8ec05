package token

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// registeredClaims are the members of a token that Claims' own fields
// carry (and "nbf", "cnf", which the server alone may ever set); Extra may
// not hold them.
var registeredClaims = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "iat": true, "nbf": true,
	"jti": true, "client_id": true, "sid": true, "scope": true, "cnf": true,
}

// appendExtra adds the members of extra to the JSON object body.
func appendExtra(body []byte, extra map[string]any) ([]byte, error) {
	if len(extra) == 0 {
		return body, nil
	}
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if registeredClaims[k] {
			return nil, fmt.Errorf("extra claim %q is a registered claim", k)
		}
	}
	b, err := json.Marshal(extra)
	if err != nil {
		return nil, fmt.Errorf("encoding extra claims: %w", err)
	}
	// body is {...} with at least "iss"; b is {...} with at least one member.
	out := make([]byte, 0, len(body)+len(b))
	out = append(out, body[:len(body)-1]...)
	out = append(out, ',')
	out = append(out, b[1:]...)
	return out, nil
}

// extraClaims returns the members of a verified token's payload that are
// not registered claims, or nil.
func extraClaims(tok *jwt.Token) map[string]any {
	if tok == nil || len(tok.Raw) == 0 {
		return nil
	}
	var all map[string]any
	seg, err := payloadSegment(tok.Raw)
	if err != nil || json.Unmarshal(seg, &all) != nil {
		return nil
	}
	var out map[string]any
	for k, v := range all {
		if registeredClaims[k] {
			continue
		}
		if out == nil {
			out = map[string]any{}
		}
		out[k] = v
	}
	return out
}

// payloadSegment decodes the middle segment of a compact JWS.
func payloadSegment(raw string) ([]byte, error) {
	_, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return nil, errors.New("no payload")
	}
	mid, _, ok := strings.Cut(rest, ".")
	if !ok {
		return nil, errors.New("no signature")
	}
	return base64.RawURLEncoding.DecodeString(mid)
}

// copyExtra returns a deep copy of extra claims as encoding/json decodes
// them (maps, slices and scalars), so that no caller shares them with
// another, or with the verified-token cache.
func copyExtra(extra map[string]any) map[string]any {
	if extra == nil {
		return nil
	}
	out := make(map[string]any, len(extra))
	for k, v := range extra {
		out[k] = copyJSON(v)
	}
	return out
}

func copyJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return copyExtra(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyJSON(e)
		}
		return out
	}
	return v
}
