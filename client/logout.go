package client

import (
	"context"
	"errors"
	"fmt"
)

// ErrLogoutEverywhereUnsupported is returned by LogoutEverywhere when the
// Refresher cannot end every session of the user: RFC 6749 and RFC 7009
// have no such call, so OAuth2Refresher cannot.
var ErrLogoutEverywhereUnsupported = errors.New("client: the refresher cannot log out everywhere")

// An EverywhereRevoker ends every session of the user a refresh token
// belongs to. JSONAPIRefresher implements it.
type EverywhereRevoker interface {
	RevokeEverywhere(ctx context.Context, refreshToken string) error
}

// RevokeEverywhere ends every session of the user of refreshToken (POST
// /api/auth/logout with "all": true). The server refuses a token that
// would not refresh any more (a *RetrieveError with invalid_grant), so
// that an old stolen token cannot end the owner's sessions.
func (r *JSONAPIRefresher) RevokeEverywhere(ctx context.Context, refreshToken string) error {
	return r.logout(ctx, map[string]any{"refreshToken": refreshToken, "all": true})
}

// LogoutEverywhere ends every session of the user at the server, those of
// other devices and programs included, and then this one as Logout does:
// the Store is cleared and requests fail with ErrReauthRequired. The local
// session is ended even when the server refused or could not be reached;
// that error is returned. With a Refresher that is not an
// EverywhereRevoker it returns ErrLogoutEverywhereUnsupported and changes
// nothing.
func (c *Client) LogoutEverywhere(ctx context.Context) error {
	r, ok := c.cfg.Refresher.(EverywhereRevoker)
	if !ok {
		return ErrLogoutEverywhereUnsupported
	}
	var rerr error
	if st := c.cur.Load(); st.tok.RefreshToken != "" {
		if err := r.RevokeEverywhere(withProver(ctx, c.prover), st.tok.RefreshToken); err != nil {
			rerr = fmt.Errorf("client: logout everywhere: %w", err)
		}
	} else {
		rerr = fmt.Errorf("client: logout everywhere: %w", ErrReauthRequired)
	}
	err := c.replace(ctx, Tokens{}, func(ctx context.Context, _ Tokens) error { return c.cfg.Store.Clear(ctx) })
	return errors.Join(rerr, err)
}
