package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/silentrefresh/silentrefresh/registry"
)

// AddClient registers a client; a taken ID returns an error wrapping
// registry.ErrExists.
func (s *Store) AddClient(ctx context.Context, c registry.Client) error {
	scopes, err := encodeScopes(c.Scopes)
	if err != nil {
		return fmt.Errorf("sqlite: add client: %w", err)
	}
	res, err := s.ws.exec(ctx, nil, `
		INSERT INTO clients (id, secret_hash, scopes, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`, c.ID, c.SecretHash, scopes, micros(c.CreatedAt))
	if err != nil {
		return wrap("add client", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("add client", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: add client %q: %w", c.ID, registry.ErrExists)
	}
	return nil
}

const clientColumns = `id, secret_hash, scopes, created_at`

func scanClient(sc interface{ Scan(...any) error }) (registry.Client, error) {
	var (
		c       registry.Client
		scopes  sql.NullString
		created sql.NullInt64
	)
	if err := sc.Scan(&c.ID, &c.SecretHash, &scopes, &created); err != nil {
		return registry.Client{}, err
	}
	c.CreatedAt = fromMicros(created)
	if scopes.Valid {
		if err := json.Unmarshal([]byte(scopes.String), &c.Scopes); err != nil {
			return registry.Client{}, fmt.Errorf("client %q: scopes: %w", c.ID, err)
		}
		if c.Scopes == nil {
			c.Scopes = []string{}
		}
	}
	return c, nil
}

// errClientNotFound is the answer of Client for an unregistered ID.
var errClientNotFound = fmt.Errorf("sqlite: client: %w", registry.ErrNotFound)

const qClient = `SELECT ` + clientColumns + ` FROM clients WHERE id = ?`

// Client returns the client with the given ID, or an error wrapping
// registry.ErrNotFound. While the registry is unchanged since it last read
// the ID, it answers from memory (clientcache.go); a change committed by
// any connection of any process is seen by the next lookup.
func (s *Store) Client(ctx context.Context, id string) (registry.Client, error) {
	if err := ctx.Err(); err != nil {
		return registry.Client{}, fmt.Errorf("sqlite: client: %w", context.Cause(ctx))
	}
	st, err := s.clients.current(ctx)
	if err != nil {
		return registry.Client{}, err
	}
	if e := s.clients.get(st, id); e != nil {
		return e.answer()
	}
	// A primary-key read on a read-only connection, run without the
	// caller's cancellation as the session lookup is (session.go).
	c, err := scanClient(s.rs.queryRow(context.WithoutCancel(ctx), nil, qClient, id))
	if s.clients != nil && s.clients.afterRead != nil {
		s.clients.afterRead(id)
	}
	if errors.Is(err, sql.ErrNoRows) {
		s.clients.put(st, id, registry.Client{}, false)
		return registry.Client{}, errClientNotFound
	}
	if err != nil {
		return registry.Client{}, wrap("client", err)
	}
	s.clients.put(st, id, c, true)
	return c, nil
}

// Clients returns every registered client, ordered by ID.
func (s *Store) Clients(ctx context.Context) ([]registry.Client, error) {
	rows, err := s.rs.query(ctx, nil, `SELECT `+clientColumns+` FROM clients ORDER BY id`)
	if err != nil {
		return nil, wrap("clients", err)
	}
	defer rows.Close()
	var out []registry.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, wrap("clients", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("clients", err)
	}
	return out, nil
}

// RemoveClient deletes a client; an unknown ID returns an error wrapping
// registry.ErrNotFound.
func (s *Store) RemoveClient(ctx context.Context, id string) error {
	res, err := s.ws.exec(ctx, nil, `DELETE FROM clients WHERE id = ?`, id)
	if err != nil {
		return wrap("remove client", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("remove client", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: remove client %q: %w", id, registry.ErrNotFound)
	}
	return nil
}
