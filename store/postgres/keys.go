package postgres

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/silentrefresh/silentrefresh/token"
)

// SigningKeys returns every stored signing key, newest first.
func (s *Store) SigningKeys(ctx context.Context) ([]token.Key, error) {
	const q = `SELECT id, algorithm, private_key, created_at FROM signing_keys ORDER BY created_at DESC, id DESC`
	var keys []token.Key
	err := s.do(ctx, "signing keys", true, func(ctx context.Context) error {
		keys = keys[:0]
		rows, err := s.pool.Query(ctx, q)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k token.Key
			var priv []byte
			if err := rows.Scan(&k.ID, &k.Algorithm, &priv, &k.CreatedAt); err != nil {
				return err
			}
			k.PrivateKey = ed25519.PrivateKey(priv)
			k.CreatedAt = k.CreatedAt.UTC()
			keys = append(keys, k)
		}
		return rows.Err()
	})
	return keys, err
}

// AddSigningKey stores a new signing key.
func (s *Store) AddSigningKey(ctx context.Context, k token.Key) error {
	const q = `INSERT INTO signing_keys (id, algorithm, private_key, created_at) VALUES ($1, $2, $3, $4)`
	return s.do(ctx, "add signing key", false, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, q, k.ID, k.Algorithm, []byte(k.PrivateKey), k.CreatedAt)
		return err
	})
}

// DeleteSigningKey removes a signing key; an unknown ID returns
// token.ErrKeyNotFound.
func (s *Store) DeleteSigningKey(ctx context.Context, id string) error {
	var n int64
	err := s.do(ctx, "delete signing key", false, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM signing_keys WHERE id = $1`, id)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("postgres: delete signing key %q: %w", id, token.ErrKeyNotFound)
	}
	return nil
}
