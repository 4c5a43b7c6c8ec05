package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/silentrefresh/silentrefresh/admin"
	"github.com/silentrefresh/silentrefresh/token"
)

// MinAdminTokenLen is the least length of Config.AdminToken.
const MinAdminTokenLen = 16

// AdminHandler returns the handler of the admin listener: the admin API
// under /admin/ and /metrics, for requests that carry
// "Authorization: Bearer <Config.AdminToken>". It is nil when
// Config.AdminToken is empty. Serve it on its own address, never on the
// public one.
func (s *Server) AdminHandler() http.Handler { return s.adminHandler }

// adminRoutes builds the admin handler.
func (s *Server) adminRoutes() http.Handler {
	op := &admin.Operator{Store: s.store, Now: s.cfg.Now, Params: s.cfg.PasswordParams}
	a := &adminAPI{s: s, op: op, guesses: newGuessLimiter(s.cfg.Now), auth: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "silentrefresh_admin_auth_total",
		Help: "Requests to the admin listener by authentication result: admitted, missing (no token), refused (wrong token or malformed header), throttled (too many wrong tokens from the address).",
	}, []string{"result"})}
	for _, r := range []string{"admitted", "missing", "refused", "throttled"} {
		a.auth.WithLabelValues(r)
	}
	s.cfg.Registry.MustRegister(a.auth)
	mux := http.NewServeMux()
	route := func(pattern, name string, methods map[string]http.HandlerFunc) {
		obs := s.metrics.latency.WithLabelValues("admin_" + name)
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			h, ok := methods[r.Method]
			if !ok && r.Method == http.MethodHead {
				h, ok = methods[http.MethodGet]
			}
			if !ok {
				w.Header().Set("Allow", strings.Join(allow, ", "))
				writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
					Description: fmt.Sprintf("%s does not take %s", r.URL.Path, r.Method)})
				return
			}
			start := time.Now()
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
			defer cancel()
			h(w, r.WithContext(ctx))
			obs.Observe(time.Since(start).Seconds())
		})
	}
	route("/admin/users", "users", map[string]http.HandlerFunc{"GET": a.listUsers, "POST": a.addUser})
	route("/admin/users/{name}", "user", map[string]http.HandlerFunc{"GET": a.getUser, "DELETE": a.deleteUser})
	route("/admin/users/{name}/disable", "user_disable", map[string]http.HandlerFunc{"POST": a.disableUser})
	route("/admin/users/{name}/enable", "user_enable", map[string]http.HandlerFunc{"POST": a.enableUser})
	route("/admin/users/{name}/password", "user_password", map[string]http.HandlerFunc{"POST": a.setPassword})
	route("/admin/users/{name}/sessions", "user_sessions", map[string]http.HandlerFunc{"GET": a.userSessions, "DELETE": a.revokeUserSessions})
	route("/admin/sessions/{id}", "session", map[string]http.HandlerFunc{"GET": a.getSession, "DELETE": a.revokeSession})
	route("/admin/keys", "keys", map[string]http.HandlerFunc{"GET": a.listKeys})
	route("/admin/keys/rotate", "keys_rotate", map[string]http.HandlerFunc{"POST": a.rotateKey})
	route("/admin/keys/retire", "keys_retire", map[string]http.HandlerFunc{"POST": a.retireKeys})
	mux.Handle("/metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", s.handleNotFound)
	return s.logRequests(s.recoverPanics(a.authenticate(cleanPaths(mux, s.handleNotFound))))
}

// adminAPI serves the admin endpoints through an admin.Operator.
type adminAPI struct {
	s       *Server
	op      *admin.Operator
	auth    *prometheus.CounterVec // authentication results
	guesses *guessLimiter          // wrong tokens per client address
}

// authenticate admits requests bearing the admin token. The presented
// token and the configured one are compared as SHA-256 digests in constant
// time, so neither their contents nor their lengths leak through timing.
// A wrong token and a malformed header get the same answer.
func (a *adminAPI) authenticate(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(a.s.cfg.AdminToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if h == "" {
			a.auth.WithLabelValues("missing").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="silentrefresh admin"`)
			writeError(w, &apiError{Status: http.StatusUnauthorized, Code: "unauthorized",
				Description: "an admin token is required: Authorization: Bearer <token>"})
			return
		}
		wait, refund := a.guesses.reserve(limitKey(a.s.clientAddr(r)))
		if refund == nil {
			a.auth.WithLabelValues("throttled").Inc()
			writeError(w, &apiError{Status: http.StatusTooManyRequests, Code: "rate_limited",
				Description: "too many wrong admin credentials from this address; retry later", RetryAfter: seconds(wait)})
			return
		}
		scheme, tok, _ := strings.Cut(h, " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || !strings.EqualFold(scheme, "Bearer") {
			a.auth.WithLabelValues("refused").Inc()
			a.s.log.Warn("admin request refused: bad token", "method", r.Method, "path", r.URL.Path, "remote", a.s.clientAddr(r))
			w.Header().Set("WWW-Authenticate", `Bearer realm="silentrefresh admin", error="invalid_token"`)
			writeError(w, &apiError{Status: http.StatusUnauthorized, Code: "unauthorized",
				Description: "the admin credentials are not valid"})
			return
		}
		refund()
		a.auth.WithLabelValues("admitted").Inc()
		next.ServeHTTP(w, r)
	})
}

// fail answers an error of the Operator: 400 for malformed requests, 404
// for unknown users and sessions, 409 for a taken username, and otherwise
// what internalError answers.
func (a *adminAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *apiError
	switch {
	case errors.As(err, &e):
	case errors.Is(err, admin.ErrInvalid):
		e = badRequest("invalid_request", "%s", strings.TrimPrefix(err.Error(), admin.ErrInvalid.Error()+": "))
	case errors.Is(err, admin.ErrUnknownUser), errors.Is(err, admin.ErrUnknownSession):
		e = &apiError{Status: http.StatusNotFound, Code: "not_found", Description: strings.TrimPrefix(err.Error(), "admin: ")}
	case errors.Is(err, admin.ErrUserExists):
		e = &apiError{Status: http.StatusConflict, Code: "conflict", Description: strings.TrimPrefix(err.Error(), "admin: ")}
	default:
		a.s.internalError(w, r, err)
		return
	}
	writeError(w, e)
}

// newUserRequest is the body of POST /admin/users.
type newUserRequest struct {
	Username *string `json:"username"`
	Password *string `json:"password"`
}

// passwordRequest is the body of POST /admin/users/{name}/password.
type passwordRequest struct {
	Password *string `json:"password"`
}

// decodeNewUser reads and checks the body of POST /admin/users.
func decodeNewUser(w http.ResponseWriter, r *http.Request) (name, password string, e *apiError) {
	var req newUserRequest
	if e := decodeStrict(w, r, &req); e != nil {
		return "", "", e
	}
	if req.Username == nil || *req.Username == "" {
		return "", "", badRequest("invalid_request", `field "username" is required`)
	}
	if req.Password == nil || *req.Password == "" {
		return "", "", badRequest("invalid_request", `field "password" is required`)
	}
	return *req.Username, *req.Password, nil
}

// decodePassword reads and checks the body of POST
// /admin/users/{name}/password.
func decodePassword(w http.ResponseWriter, r *http.Request) (string, *apiError) {
	var req passwordRequest
	if e := decodeStrict(w, r, &req); e != nil {
		return "", e
	}
	if req.Password == nil || *req.Password == "" {
		return "", badRequest("invalid_request", `field "password" is required`)
	}
	return *req.Password, nil
}

func (a *adminAPI) listUsers(w http.ResponseWriter, r *http.Request) {
	us, err := a.op.Users(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	views := make([]admin.UserJSON, 0, len(us))
	for _, u := range us {
		views = append(views, admin.UserView(u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": views})
}

func (a *adminAPI) addUser(w http.ResponseWriter, r *http.Request) {
	name, password, e := decodeNewUser(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	u, err := a.op.AddUser(r.Context(), name, password)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.s.log.Info("admin: user added", "sub", u.ID)
	writeJSON(w, http.StatusCreated, map[string]any{"user": admin.UserView(u)})
}

func (a *adminAPI) getUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	u, err := a.op.User(r.Context(), name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": admin.UserView(u)})
}

// change answers one of the Operator's changes to a user.
func (a *adminAPI) change(w http.ResponseWriter, r *http.Request, what string, res admin.Result, err error) {
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if res.Changed {
		a.s.log.Info("admin: "+what, "sub", res.User.ID, "revoked_sessions", res.Revoked)
	}
	writeJSON(w, http.StatusOK, admin.ResultJSON{Username: res.User.Username, Changed: res.Changed, RevokedSessions: res.Revoked})
}

func (a *adminAPI) deleteUser(w http.ResponseWriter, r *http.Request) {
	res, err := a.op.DeleteUser(r.Context(), r.PathValue("name"))
	a.change(w, r, "user deleted", res, err)
}

func (a *adminAPI) disableUser(w http.ResponseWriter, r *http.Request) {
	if e := emptyBody(w, r); e != nil {
		writeError(w, e)
		return
	}
	res, err := a.op.DisableUser(r.Context(), r.PathValue("name"))
	a.change(w, r, "user disabled", res, err)
}

func (a *adminAPI) enableUser(w http.ResponseWriter, r *http.Request) {
	if e := emptyBody(w, r); e != nil {
		writeError(w, e)
		return
	}
	res, err := a.op.EnableUser(r.Context(), r.PathValue("name"))
	a.change(w, r, "user enabled", res, err)
}

func (a *adminAPI) setPassword(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	password, e := decodePassword(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	res, err := a.op.SetPassword(r.Context(), name, password)
	a.change(w, r, "password set", res, err)
}

func (a *adminAPI) userSessions(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	infos, err := a.op.Sessions(r.Context(), name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	views := make([]admin.SessionJSON, 0, len(infos))
	for _, in := range infos {
		views = append(views, admin.SessionView(in))
	}
	writeJSON(w, http.StatusOK, map[string]any{"username": name, "sessions": views})
}

func (a *adminAPI) revokeUserSessions(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	n, err := a.op.RevokeUserSessions(r.Context(), name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.s.log.Info("admin: sessions revoked", "count", n)
	writeJSON(w, http.StatusOK, admin.ResultJSON{Username: name, Changed: n > 0, RevokedSessions: n})
}

func (a *adminAPI) getSession(w http.ResponseWriter, r *http.Request) {
	f, err := a.op.Session(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"session": admin.FamilyView(f)})
}

func (a *adminAPI) revokeSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	res, err := a.op.RevokeSession(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if res.Changed {
		a.s.log.Info("admin: session revoked", "sid", id)
	}
	writeJSON(w, http.StatusOK, admin.ResultJSON{Changed: res.Changed, RevokedSessions: res.Revoked})
}

// decodeStrict is decodeJSON that also refuses fields the endpoint does
// not know, so that a misspelt field is an error rather than ignored.
func decodeStrict(w http.ResponseWriter, r *http.Request, dst any) *apiError {
	return decodeBody(w, r, dst, true)
}

// emptyBody refuses a request body other than none or an empty JSON
// object, for endpoints that take no parameters.
func emptyBody(w http.ResponseWriter, r *http.Request) *apiError {
	if r.ContentLength == 0 {
		return nil
	}
	var req struct{}
	return decodeStrict(w, r, &req)
}

// cleanPaths answers paths that are not in canonical form (an empty
// segment, "." or "..") with notFound, where http.ServeMux would redirect
// with an HTML body: an empty username or session ID is no endpoint.
func cleanPaths(next http.Handler, notFound http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "" || path.Clean(p) != p {
			notFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *adminAPI) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := token.Keys(r.Context(), a.s.store, a.s.KeyPolicy())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": admin.KeyViews(keys, a.s.cfg.Now())})
}

func (a *adminAPI) rotateKey(w http.ResponseWriter, r *http.Request) {
	if e := emptyBody(w, r); e != nil {
		writeError(w, e)
		return
	}
	rot, err := a.s.RotateSigningKey(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	now := a.s.cfg.Now()
	writeJSON(w, http.StatusOK, map[string]any{"new": admin.KeyView(rot.New, now), "retired": admin.KeyViews(rot.Retired, now)})
}

// retireRequest is the body of POST /admin/keys/retire.
type retireRequest struct {
	// Force deletes retired keys at once, although tokens they signed
	// have not expired: Keys, or every retired key.
	Force bool     `json:"force"`
	Keys  []string `json:"keys"`
}

// decodeRetire reads and checks the body of POST /admin/keys/retire: none,
// {}, or {"force": true, "keys": [...]}.
func decodeRetire(w http.ResponseWriter, r *http.Request) (retireRequest, *apiError) {
	var req retireRequest
	if r.ContentLength != 0 {
		if e := decodeStrict(w, r, &req); e != nil {
			return retireRequest{}, e
		}
	}
	if len(req.Keys) > 0 && !req.Force {
		return retireRequest{}, badRequest("invalid_request", `field "keys" needs "force": true; without it, retire deletes only the keys no token can need`)
	}
	for _, id := range req.Keys {
		if id == "" || len(id) > 128 {
			return retireRequest{}, badRequest("invalid_request", `field "keys" holds an empty or overlong key ID`)
		}
	}
	return req, nil
}

func (a *adminAPI) retireKeys(w http.ResponseWriter, r *http.Request) {
	req, e := decodeRetire(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	var (
		gone []token.KeyInfo
		err  error
	)
	if req.Force {
		gone, err = a.s.ForceRetireSigningKeys(r.Context(), req.Keys...)
	} else {
		gone, err = a.s.RetireSigningKeys(r.Context())
	}
	switch {
	case errors.Is(err, token.ErrKeyNotFound):
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Description: "no signing key with that ID"})
		return
	case errors.Is(err, token.ErrSigningKeyInUse):
		writeError(w, &apiError{Status: http.StatusConflict, Code: "conflict", Description: "the key signs new tokens; rotate before retiring it"})
		return
	case err != nil:
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"retired": admin.KeyViews(gone, a.s.cfg.Now())})
}
