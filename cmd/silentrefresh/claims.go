package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/user"
)

// runUserClaims is "user claims NAME [--set k=v]... [--unset k]... [--clear]":
// it changes the claims that go into every access token of the user, and
// prints them. Sessions see the change at their next refresh.
func runUserClaims(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("user claims", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", defaultDSN, "database: sqlite:PATH or postgres://...")
	var set, unset repeated
	fs.Var(&set, "set", "set a claim: NAME=VALUE, NAME=a,b (a list), NAME=[a] (a list of one), NAME=json:VALUE (repeatable)")
	fs.Var(&unset, "unset", "remove a claim (repeatable)")
	clear := fs.Bool("clear", false, "remove every claim first")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: silentrefresh user claims NAME [--set roles=admin,editor] [--set tenant=acme] [--unset NAME] [--clear] [--db DSN]\n\nWithout changes it prints the user's claims. Reserved claims (iss sub aud exp iat nbf jti sid cnf client_id scope) cannot be set.\n\nflags:")
		fs.PrintDefaults()
	}
	// The username comes first or last: flags may stand on either side.
	var name string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return fmt.Errorf("user claims: unexpected arguments %q", fs.Args())
	}
	if err := user.ValidUsername(name); err != nil {
		return fmt.Errorf("user claims: the username: %w", err)
	}
	changes := claims.Set{}
	for _, a := range set {
		k, v, err := claims.ParseAssignment(a)
		if err != nil {
			return fmt.Errorf("user claims: --set: %w", err)
		}
		changes[k] = v
	}
	st, err := openStore(ctx, *db)
	if err != nil {
		return fmt.Errorf("user claims: open database: %w", err)
	}
	defer st.Close()
	u, err := st.UserByName(ctx, name)
	if errors.Is(err, user.ErrNotFound) {
		return fmt.Errorf("user claims: no user %q", name)
	}
	if err != nil {
		return fmt.Errorf("user claims: %w", err)
	}
	cur, err := st.UserClaims(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("user claims: %w", err)
	}
	if len(set) > 0 || len(unset) > 0 || *clear {
		next := claims.Set{}
		if !*clear {
			maps.Copy(next, cur)
		}
		for _, k := range unset {
			delete(next, k)
		}
		maps.Copy(next, changes)
		if err := claims.Validate(next); err != nil {
			return fmt.Errorf("user claims: %w", err)
		}
		if err := st.SetUserClaims(ctx, u.ID, next, time.Now()); err != nil {
			return fmt.Errorf("user claims: %w", err)
		}
		cur = next
	}
	for _, k := range slices.Sorted(maps.Keys(cur)) {
		b, _ := json.Marshal(cur[k])
		fmt.Fprintf(stdout, "%s=%s\n", k, b)
	}
	if len(cur) == 0 {
		fmt.Fprintf(stdout, "user %s has no claims\n", name)
	}
	return nil
}
