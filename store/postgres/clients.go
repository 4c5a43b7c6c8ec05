package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/silentrefresh/silentrefresh/registry"
)

// AddClient registers a client; a taken ID returns registry.ErrExists.
func (s *Store) AddClient(ctx context.Context, c registry.Client) error {
	var scopes any
	if c.Scopes != nil {
		b, err := json.Marshal(c.Scopes)
		if err != nil {
			return fmt.Errorf("postgres: add client: %w", err)
		}
		scopes = string(b)
	}
	const q = `INSERT INTO clients (id, secret_hash, scopes, created_at) VALUES ($1, $2, $3::jsonb, $4)`
	err := s.do(ctx, "add client", false, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, q, c.ID, c.SecretHash, scopes, orNow(c.CreatedAt))
		return err
	})
	s.forgetClient(c.ID)
	if uniqueViolation(err, "clients_pkey") {
		return fmt.Errorf("postgres: add client %q: %w", c.ID, registry.ErrExists)
	}
	return err
}

const clientColumns = `id, secret_hash, scopes::text, created_at`

func scanClient(row pgx.Row) (registry.Client, error) {
	var (
		c      registry.Client
		scopes *string
	)
	if err := row.Scan(&c.ID, &c.SecretHash, &scopes, &c.CreatedAt); err != nil {
		return registry.Client{}, err
	}
	c.CreatedAt = c.CreatedAt.UTC()
	if scopes != nil {
		if err := json.Unmarshal([]byte(*scopes), &c.Scopes); err != nil {
			return registry.Client{}, fmt.Errorf("client %q: scopes: %w", c.ID, err)
		}
		if c.Scopes == nil {
			c.Scopes = []string{}
		}
	}
	return c, nil
}

// errClientNotFound is Client's answer for an unknown ID, made once: a
// remembered unknown client_id costs no allocation.
var errClientNotFound = fmt.Errorf("postgres: client: %w", registry.ErrNotFound)

// Client returns the client with the given ID, or registry.ErrNotFound.
// It answers from the client cache when it can (see cache.go), unknown
// IDs included.
func (s *Store) Client(ctx context.Context, id string) (registry.Client, error) {
	var (
		g    uint64
		fill bool
	)
	if ch := s.cache; ch != nil && !s.closed.Load() {
		if c, found, ok := ch.client(id); ok {
			if !found {
				return registry.Client{}, errClientNotFound
			}
			return c, nil
		}
		g, fill = ch.begin()
	}
	var c registry.Client
	err := s.do(ctx, "client", true, func(ctx context.Context) error {
		var err error
		c, err = scanClient(s.pool.QueryRow(ctx, `SELECT `+clientColumns+` FROM clients WHERE id = $1`, id))
		return err
	})
	found := err == nil
	if err != nil && !noRows(err) {
		return registry.Client{}, err
	}
	if fill {
		if s.hooks.afterQuery != nil {
			s.hooks.afterQuery("c", id)
		}
		e := clientEntry{c: c, found: found}
		e.c.Scopes = slices.Clone(c.Scopes)
		s.cache.clients.fill(&s.cache.gen, g, id, e, s.hooks.beforeStore)
	}
	if !found {
		return registry.Client{}, errClientNotFound
	}
	return c, nil
}

// Clients returns every registered client, ordered by ID.
func (s *Store) Clients(ctx context.Context) ([]registry.Client, error) {
	var out []registry.Client
	err := s.do(ctx, "clients", true, func(ctx context.Context) error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, `SELECT `+clientColumns+` FROM clients ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanClient(rows)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	return out, err
}

// RemoveClient deletes a client; an unknown ID returns registry.ErrNotFound.
func (s *Store) RemoveClient(ctx context.Context, id string) error {
	var n int64
	err := s.do(ctx, "remove client", false, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM clients WHERE id = $1`, id)
		n = tag.RowsAffected()
		return err
	})
	s.forgetClient(id)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("postgres: remove client %q: %w", id, registry.ErrNotFound)
	}
	return nil
}
