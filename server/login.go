package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"time"
)

// Login outcomes, the label values of silentrefresh_login_total.
const (
	loginSuccess            = "success"
	loginInvalidCredentials = "invalid_credentials"
	loginRateLimited        = "rate_limited"
	loginOverloaded         = "overloaded"
	loginError              = "error"
)

// loginOutcomes lists every login outcome, for the metric's help and its
// label values.
var loginOutcomes = []string{loginSuccess, loginInvalidCredentials, loginRateLimited, loginOverloaded, loginError}

// loginDefaults fills in and checks the login limits and the hash bound
// of cfg.
func loginDefaults(cfg *Config) error {
	if cfg.LoginLimit == (LoginLimit{}) {
		cfg.LoginLimit = LoginLimit{Burst: 10, Every: 6 * time.Second}
	}
	if err := cfg.LoginLimit.validate("login limit"); err != nil {
		return err
	}
	if cfg.LoginLimitPerClient == (LoginLimit{}) {
		cfg.LoginLimitPerClient = LoginLimit{Burst: max(1, cfg.LoginLimit.Burst/2), Every: 2 * cfg.LoginLimit.Every}
	}
	if cfg.LoginLimitPerAddress == (LoginLimit{}) {
		cfg.LoginLimitPerAddress = LoginLimit{Burst: 10 * cfg.LoginLimit.Burst, Every: max(time.Millisecond, cfg.LoginLimit.Every/60)}
	}
	if err := cfg.LoginLimitPerClient.validate("per-client login limit"); err != nil {
		return err
	}
	if err := cfg.LoginLimitPerAddress.validate("per-address login limit"); err != nil {
		return err
	}
	for _, p := range cfg.TrustedProxies {
		if !p.IsValid() {
			return fmt.Errorf("server: trusted proxy %v is not a valid prefix", p)
		}
	}
	switch {
	case cfg.PasswordHashes < 0:
		return fmt.Errorf("server: PasswordHashes %d must not be negative", cfg.PasswordHashes)
	case cfg.PasswordHashes == 0:
		cfg.PasswordHashes = max(1, runtime.GOMAXPROCS(0)-1)
	}
	switch {
	case cfg.PasswordHashWait < 0:
		return fmt.Errorf("server: PasswordHashWait %v must not be negative", cfg.PasswordHashWait)
	case cfg.PasswordHashWait == 0:
		cfg.PasswordHashWait = time.Second
	}
	return nil
}

// newUserTagger returns the function that names a username in the log: a
// short HMAC of it under a key drawn when the server starts. A password
// typed into the username field must not end up in the log, yet the lines
// of one username must be told apart from those of another, within one
// run of the server.
func newUserTagger() func(string) string {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(fmt.Sprintf("server: no randomness for the log key: %v", err))
	}
	return func(username string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(username))
		return hex.EncodeToString(m.Sum(nil)[:6])
	}
}

// overloaded is the answer to a login refused for want of a hash slot.
var overloaded = &apiError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable",
	Description: "too many logins at once; retry shortly", RetryAfter: 1}

// authenticate checks a username and password against the failed-login
// limits, the hash bound and the Authenticator, in that order, so that
// neither a refused attempt nor an overload costs a hash. It returns the
// identity, an *apiError to answer, or another error for internalError.
func (s *Server) authenticate(r *http.Request, username, password, clientID string) (Identity, error) {
	addr := s.clientAddr(r)
	tag := s.userTag(username)
	res, limit, wait := s.limits.reserve(username, limitKey(addr))
	if res == nil {
		s.metrics.logins.WithLabelValues(loginRateLimited).Inc()
		s.refusals.note(refusalKey{limit: limit, user: tag, remote: addr})
		return Identity{}, &apiError{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Description: "too many failed logins; retry later", RetryAfter: seconds(wait)}
	}
	u, err := s.checkPassword(r, LoginRequest{Username: username, Password: password, ClientID: clientID, HTTP: r})
	if errors.Is(err, ErrInvalidCredentials) {
		res.fail()
		s.metrics.logins.WithLabelValues(loginInvalidCredentials).Inc()
		s.log.Info("login failed", "user", tag, "remote", addr)
		return Identity{}, &apiError{Status: http.StatusUnauthorized, Code: "invalid_credentials",
			Description: "unknown username or wrong password"}
	}
	// No wrong password was tested: the attempt costs the limits nothing.
	res.release()
	switch {
	case errors.Is(err, errOverloaded):
		s.metrics.logins.WithLabelValues(loginOverloaded).Inc()
		return Identity{}, overloaded
	case err != nil:
		s.metrics.logins.WithLabelValues(loginError).Inc()
		return Identity{}, err
	case u.Subject == "":
		s.metrics.logins.WithLabelValues(loginError).Inc()
		return Identity{}, errors.New("server: the Authenticator returned no subject")
	}
	s.metrics.logins.WithLabelValues(loginSuccess).Inc()
	return u, nil
}

// checkPassword runs the Authenticator in a hash slot. Time the request
// no longer has, spent waiting for the slot or hashing, is reported as
// overload: it says nothing about the database.
func (s *Server) checkPassword(r *http.Request, req LoginRequest) (Identity, error) {
	ctx := r.Context()
	release, err := s.hashes.acquire(ctx)
	if err != nil {
		return Identity{}, err
	}
	defer release()
	if err := ctx.Err(); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", errOverloaded, err)
	}
	u, err := s.cfg.Authenticator.Authenticate(ctx, req)
	if err == nil && ctx.Err() != nil {
		return Identity{}, fmt.Errorf("%w: hashing outlived the request: %w", errOverloaded, ctx.Err())
	}
	return u, err
}
