package main

import (
	"context"
	"fmt"

	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/store/dsn"
)

// defaultDSN is the --db default of every command that opens the database.
const defaultDSN = dsn.Default

// openStore opens the database named by the --db flag db (see package
// store/dsn for the forms it takes).
func openStore(ctx context.Context, db string) (store.Store, error) {
	st, err := dsn.Open(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("--db: %w", err)
	}
	return st, nil
}
