// Package admin is what operators do to a deployment: list, add, disable,
// enable and delete users, set their passwords, list and revoke their
// sessions. The CLI (silentrefresh user, silentrefresh session) runs it on
// the database directly; the server's admin listener runs it over HTTP.
//
// Every change that takes access away (disable, delete, a new password)
// revokes the user's sessions in the same transaction, so that their
// refresh tokens are refused at once and session-checked requests answer
// 401 on every replica.
package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// ErrInvalid is wrapped by the errors of requests that are malformed: a
// username or session ID that cannot exist, an empty or overlong
// password. Nothing was written.
var ErrInvalid = errors.New("admin: invalid request")

// ErrUnknownUser is wrapped by the errors of requests naming a user that
// does not exist. Nothing was written.
var ErrUnknownUser = errors.New("admin: unknown user")

// ErrUnknownSession is wrapped by the errors of requests naming a session
// that does not exist. Nothing was written.
var ErrUnknownSession = errors.New("admin: unknown session")

// ErrUserExists is wrapped by the error of AddUser for a taken username.
var ErrUserExists = errors.New("admin: username is taken")

// Operator carries out operators' requests on a store. The zero value is
// not usable: Store is required.
type Operator struct {
	// Store is the database of the deployment.
	Store store.Store
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Params hash new passwords; the zero value means user.DefaultParams.
	Params user.Params
}

func (o *Operator) now() time.Time {
	if o.Now == nil {
		return time.Now().UTC().Truncate(time.Microsecond)
	}
	return o.Now().UTC().Truncate(time.Microsecond)
}

// Users returns every user, ordered by username.
func (o *Operator) Users(ctx context.Context) ([]user.User, error) {
	us, err := o.Store.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("admin: list users: %w", err)
	}
	return us, nil
}

// User returns the user with the given name.
func (o *Operator) User(ctx context.Context, name string) (user.User, error) {
	if err := user.ValidUsername(name); err != nil {
		return user.User{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	u, err := o.Store.UserByName(ctx, name)
	if errors.Is(err, user.ErrNotFound) {
		return user.User{}, fmt.Errorf("%w %q", ErrUnknownUser, name)
	}
	if err != nil {
		return user.User{}, fmt.Errorf("admin: look up user %q: %w", name, err)
	}
	return u, nil
}

// AddUser creates a user with the given name and password.
func (o *Operator) AddUser(ctx context.Context, name, password string) (user.User, error) {
	if err := user.ValidUsername(name); err != nil {
		return user.User{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	hash, err := o.hash(password)
	if err != nil {
		return user.User{}, err
	}
	u := user.User{ID: token.NewID(), Username: name, PasswordHash: hash, CreatedAt: o.now()}
	err = o.Store.CreateUser(ctx, u)
	if errors.Is(err, user.ErrExists) {
		return user.User{}, fmt.Errorf("%w: %q", ErrUserExists, name)
	}
	if err != nil {
		return user.User{}, fmt.Errorf("admin: add user %q: %w", name, err)
	}
	return u, nil
}

func (o *Operator) hash(password string) (string, error) {
	switch {
	case password == "":
		return "", fmt.Errorf("%w: the password is empty", ErrInvalid)
	case len(password) > user.MaxPasswordLen:
		return "", fmt.Errorf("%w: the password is longer than %d bytes", ErrInvalid, user.MaxPasswordLen)
	}
	p := o.Params
	if p == (user.Params{}) {
		p = user.DefaultParams
	}
	h, err := user.HashPasswordParams(password, p)
	if err != nil {
		return "", fmt.Errorf("admin: hash password: %w", err)
	}
	return h, nil
}

// Result is what a change did.
type Result struct {
	User user.User // the user as it was before the change
	// Revoked is how many sessions the change revoked.
	Revoked int64
	// Changed is false when there was nothing to do (disabling a user
	// who is disabled already, say).
	Changed bool
}

// DisableUser disables the user and revokes every session of it.
// Disabling a disabled user keeps its first DisabledAt, and only revokes
// any session still live (none, unless the store was written to behind
// this package's back).
func (o *Operator) DisableUser(ctx context.Context, name string) (Result, error) {
	res, err := o.update(ctx, name, func(u user.User, now time.Time) (store.UserChange, bool) {
		return store.UserChange{Disable: true, RevokeReason: session.RevokeUserDisabled, At: now}, !u.Disabled()
	})
	if err != nil || res.Changed {
		return res, err
	}
	n, err := o.Store.RevokeSubject(ctx, res.User.ID, o.now(), session.RevokeUserDisabled)
	if err != nil {
		return Result{}, fmt.Errorf("admin: disable %q: revoke sessions: %w", name, err)
	}
	return Result{User: res.User, Revoked: n, Changed: n > 0}, nil
}

// EnableUser lets a disabled user log in again. Sessions revoked when it
// was disabled stay revoked.
func (o *Operator) EnableUser(ctx context.Context, name string) (Result, error) {
	return o.update(ctx, name, func(u user.User, now time.Time) (store.UserChange, bool) {
		return store.UserChange{Enable: true}, u.Disabled()
	})
}

// DeleteUser deletes the user and revokes every session of it.
func (o *Operator) DeleteUser(ctx context.Context, name string) (Result, error) {
	return o.update(ctx, name, func(u user.User, now time.Time) (store.UserChange, bool) {
		return store.UserChange{Delete: true, RevokeReason: session.RevokeUserDeleted, At: now}, true
	})
}

// SetPassword gives the user a new password and revokes every session of
// it.
func (o *Operator) SetPassword(ctx context.Context, name, password string) (Result, error) {
	if err := user.ValidUsername(name); err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	hash, err := o.hash(password)
	if err != nil {
		return Result{}, err
	}
	return o.update(ctx, name, func(u user.User, now time.Time) (store.UserChange, bool) {
		return store.UserChange{PasswordHash: hash, RevokeReason: session.RevokePasswordChanged, At: now}, true
	})
}

// update looks the user up and applies the change that change returns,
// unless it says there is nothing to do.
func (o *Operator) update(ctx context.Context, name string, change func(user.User, time.Time) (store.UserChange, bool)) (Result, error) {
	u, err := o.User(ctx, name)
	if err != nil {
		return Result{}, err
	}
	c, do := change(u, o.now())
	if !do {
		return Result{User: u}, nil
	}
	n, err := o.Store.UpdateUser(ctx, u.ID, c)
	if errors.Is(err, user.ErrNotFound) {
		// Deleted since the look-up.
		return Result{}, fmt.Errorf("%w %q", ErrUnknownUser, name)
	}
	if err != nil {
		return Result{}, fmt.Errorf("admin: update user %q: %w", name, err)
	}
	return Result{User: u, Revoked: n, Changed: true}, nil
}

// Sessions returns the live sessions of the user, most recently refreshed
// first.
func (o *Operator) Sessions(ctx context.Context, name string) ([]session.Info, error) {
	u, err := o.User(ctx, name)
	if err != nil {
		return nil, err
	}
	out, err := o.Store.Sessions(ctx, u.ID, o.now())
	if err != nil {
		return nil, fmt.Errorf("admin: sessions of %q: %w", name, err)
	}
	return out, nil
}

// RevokeUserSessions revokes every session of the user and returns how many
// it revoked. The user may go on logging in.
func (o *Operator) RevokeUserSessions(ctx context.Context, name string) (int64, error) {
	u, err := o.User(ctx, name)
	if err != nil {
		return 0, err
	}
	n, err := o.Store.RevokeSubject(ctx, u.ID, o.now(), session.RevokeAdmin)
	if err != nil {
		return 0, fmt.Errorf("admin: revoke sessions of %q: %w", name, err)
	}
	return n, nil
}

// Session returns the session (live or not) with the given ID.
func (o *Operator) Session(ctx context.Context, id string) (session.Family, error) {
	if err := ValidSessionID(id); err != nil {
		return session.Family{}, err
	}
	f, err := o.Store.Family(ctx, id)
	if errors.Is(err, session.ErrNotFound) {
		return session.Family{}, fmt.Errorf("%w %q", ErrUnknownSession, id)
	}
	if err != nil {
		return session.Family{}, fmt.Errorf("admin: look up session: %w", err)
	}
	return f, nil
}

// RevokeSession revokes the session with the given ID. Revoking a revoked
// session keeps its first revocation and is not an error; Result.Changed
// tells which it was.
func (o *Operator) RevokeSession(ctx context.Context, id string) (Result, error) {
	f, err := o.Session(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if f.Revoked() {
		return Result{}, nil
	}
	err = o.Store.RevokeFamily(ctx, id, o.now(), session.RevokeAdmin)
	if errors.Is(err, session.ErrNotFound) {
		return Result{}, fmt.Errorf("%w %q", ErrUnknownSession, id)
	}
	if err != nil {
		return Result{}, fmt.Errorf("admin: revoke session: %w", err)
	}
	return Result{Revoked: 1, Changed: true}, nil
}

// ValidSessionID reports, wrapping ErrInvalid, whether id cannot be a
// session ID: the server names sessions with token.NewID, 16 random bytes
// in unpadded base64url.
func ValidSessionID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: the session ID is empty", ErrInvalid)
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(id); err != nil || len(b) != 16 {
		return fmt.Errorf("%w: %q is not a session ID (22 characters of unpadded base64url)", ErrInvalid, truncate(id, 64))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
