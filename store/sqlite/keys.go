package sqlite

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"

	"github.com/silentrefresh/silentrefresh/token"
)

// SigningKeys returns every stored signing key, newest first (by CreatedAt,
// then by ID for keys created in the same microsecond).
func (s *Store) SigningKeys(ctx context.Context) ([]token.Key, error) {
	rows, err := s.rs.query(ctx, nil, qSigningKeys)
	if err != nil {
		return nil, wrap("signing keys", err)
	}
	defer rows.Close()
	var out []token.Key
	for rows.Next() {
		var (
			k       token.Key
			priv    []byte
			created sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &k.Algorithm, &priv, &created); err != nil {
			return nil, wrap("signing keys: scan", err)
		}
		k.PrivateKey = ed25519.PrivateKey(priv)
		k.CreatedAt = fromMicros(created)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("signing keys", err)
	}
	return out, nil
}

// AddSigningKey stores a new signing key. Its ID must be new.
func (s *Store) AddSigningKey(ctx context.Context, k token.Key) error {
	switch {
	case k.ID == "":
		return errors.New("sqlite: add signing key: empty ID")
	case len(k.PrivateKey) == 0:
		return errors.New("sqlite: add signing key: empty private key")
	case k.CreatedAt.IsZero():
		return errors.New("sqlite: add signing key: zero CreatedAt")
	}
	if _, err := s.ws.exec(ctx, nil, qInsertKey,
		k.ID, k.Algorithm, []byte(k.PrivateKey), micros(k.CreatedAt),
	); err != nil {
		if isConstraint(err) {
			return fmt.Errorf("sqlite: add signing key %q: ID already exists: %w", k.ID, err)
		}
		return wrap("add signing key", err)
	}
	return nil
}

// DeleteSigningKey removes the key with the given ID; an unknown ID returns
// an error wrapping token.ErrKeyNotFound.
func (s *Store) DeleteSigningKey(ctx context.Context, id string) error {
	res, err := s.ws.exec(ctx, nil, qDeleteKey, id)
	if err != nil {
		return wrap("delete signing key", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap("delete signing key", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: delete signing key %q: %w", id, token.ErrKeyNotFound)
	}
	return nil
}
