package server

import (
	"errors"
	"maps"
	"net/http"

	"github.com/silentrefresh/silentrefresh/session"
)

// handleIntrospect is RFC 7662 token introspection, for registered
// confidential clients (resource servers that cannot verify a JWT, or that
// must see a logout at once). Access tokens and refresh tokens are both
// answered; anything revoked, expired, unknown or malformed is
// {"active":false}, whatever token_type_hint says.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	form, cl, ok := s.clientForm(w, r)
	if !ok {
		return
	}
	if !cl.Authenticated {
		writeClientError(w, invalidClient("introspection needs a registered confidential client (HTTP Basic or client_secret)"))
		return
	}
	tok, e := formToken(form)
	if e != nil {
		writeError(w, e)
		return
	}
	if c, err := s.verifier.Verify(r.Context(), tok); err == nil {
		_, err := s.engine.Session(r.Context(), c.SessionID)
		switch {
		case errors.Is(err, session.ErrSessionEnded):
			writeJSON(w, http.StatusOK, inactive)
		case err != nil:
			s.internalError(w, r, err)
		default:
			reply := map[string]any{}
			maps.Copy(reply, c.Extra)
			maps.Copy(reply, map[string]any{
				"active": true, "token_type": "Bearer", "iss": c.Issuer, "sub": c.Subject, "aud": c.Audience,
				"exp": c.ExpiresAt.Unix(), "iat": c.IssuedAt.Unix(), "jti": c.ID, "client_id": c.ClientID, "sid": c.SessionID,
			})
			if c.Scope != "" {
				reply["scope"] = c.Scope
			}
			if c.KeyThumbprint != "" {
				// RFC 9449 section 6.2: the key a DPoP-bound token needs.
				reply["cnf"] = map[string]string{"jkt": c.KeyThumbprint}
				reply["token_type"] = "DPoP"
			}
			writeJSON(w, http.StatusOK, reply)
		}
		return
	}
	in, err := s.engine.Introspect(r.Context(), tok)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !in.Active {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	cid := in.Family.TokenClientID()
	reply := map[string]any{}
	maps.Copy(reply, in.Claims)
	maps.Copy(reply, map[string]any{
		"active": true, "token_type": "refresh_token", "iss": s.cfg.Issuer, "sub": in.Family.Subject,
		"exp": in.Token.ExpiresAt.Unix(), "iat": in.Token.IssuedAt.Unix(), "client_id": cid, "sid": in.Family.ID,
	})
	if in.Scope != "" {
		reply["scope"] = in.Scope
	}
	writeJSON(w, http.StatusOK, reply)
}

// inactive is the answer for every token that is not active (RFC 7662
// section 2.2): nothing more, so that it tells nothing about the token.
var inactive = map[string]bool{"active": false}
