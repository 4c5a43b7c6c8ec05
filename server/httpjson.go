package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// maxBodyBytes bounds every request body; larger bodies get 413.
const maxBodyBytes = 1 << 20

// apiError is an error answered to the client as a JSON body. Its fields
// follow RFC 6749 section 5.2, which the JSON API shares.
type apiError struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	RetryAfter  int    `json:"-"` // seconds; sets Retry-After when positive
}

func (e *apiError) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: code, Description: fmt.Sprintf(format, args...)}
}

// writeJSON writes v as the JSON body of a response with the given status.
// Token-bearing responses must not be cached (RFC 6749 section 5.1), and
// nothing this server answers is worth caching unless a handler says so.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// writeError writes e as a JSON error body.
func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, e)
}

// decodeJSON reads a JSON object from the request body into dst. It
// refuses bodies over 1 MiB (413), malformed JSON, wrong types and trailing
// data (400), each with a message that names the problem. The Content-Type
// is not checked: a body that is not JSON fails as malformed JSON.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) *apiError {
	return decodeBody(w, r, dst, false)
}

// decodeBody is decodeJSON, and with strict decodeStrict.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any, strict bool) *apiError {
	if r.ContentLength > maxBodyBytes {
		return jsonError(&http.MaxBytesError{Limit: maxBodyBytes})
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(dst); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return badRequest("invalid_request", "unknown field %s", f)
		}
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if tooLarge(err) {
			return jsonError(err)
		}
		return badRequest("invalid_request", "request body must hold a single JSON object")
	}
	return nil
}

// jsonError turns a decoding error into the API error that explains it.
func jsonError(err error) *apiError {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case tooLarge(err):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "invalid_request",
			Description: fmt.Sprintf("request body is larger than %d bytes", maxBodyBytes)}
	case errors.Is(err, io.EOF):
		return badRequest("invalid_request", "request body is empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("invalid_request", "request body is truncated JSON")
	case errors.As(err, &syntax):
		return badRequest("invalid_request", "request body is not valid JSON (at byte %d: %v)", syntax.Offset, err)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return badRequest("invalid_request", "field %q must be a %s, not %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
		}
		return badRequest("invalid_request", "request body must be a JSON object, not %s", typ.Value)
	default:
		return badRequest("invalid_request", "malformed JSON: %v", err)
	}
}

func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	default:
		return goKind
	}
}

// readForm parses an application/x-www-form-urlencoded body (RFC 6749
// section 4.3.2 and 6), refusing other content types, bodies over 1 MiB and
// parameters given more than once (section 3.2).
func readForm(w http.ResponseWriter, r *http.Request) (map[string]string, *apiError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, badRequest("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
	}
	if r.ContentLength > maxBodyBytes {
		return nil, jsonError(&http.MaxBytesError{Limit: maxBodyBytes})
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if err := r.ParseForm(); err != nil {
		if tooLarge(err) {
			return nil, jsonError(err)
		}
		return nil, badRequest("invalid_request", "malformed form body: %v", err)
	}
	out := make(map[string]string, len(r.PostForm))
	for k, vs := range r.PostForm {
		if len(vs) > 1 {
			return nil, badRequest("invalid_request", "parameter %q is given more than once", k)
		}
		out[k] = vs[0]
	}
	return out, nil
}
