package session

import (
	"context"
	"errors"
	"fmt"
)

// Sessions returns the live sessions of subject, most recently refreshed
// first.
func (e *Engine) Sessions(ctx context.Context, subject string) ([]Info, error) {
	if subject == "" {
		return nil, errors.New("session: sessions: empty subject")
	}
	out, err := e.store.Sessions(ctx, subject, e.now())
	if err != nil {
		return nil, fmt.Errorf("session: sessions: %w", err)
	}
	return out, nil
}

// RevokeSubject revokes every session of subject that is not revoked yet,
// and returns how many it revoked.
func (e *Engine) RevokeSubject(ctx context.Context, subject, reason string) (int64, error) {
	if subject == "" {
		return 0, errors.New("session: revoke sessions: empty subject")
	}
	n, err := e.store.RevokeSubject(ctx, subject, e.now(), reason)
	if err != nil {
		return n, fmt.Errorf("session: revoke sessions: %w", err)
	}
	return n, nil
}
