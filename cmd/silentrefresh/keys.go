package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/silentrefresh/silentrefresh/admin"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/token"
)

const keysUsage = `usage:
  silentrefresh keys list   --db DSN [--access-ttl D] [--json]
  silentrefresh keys rotate --db DSN [--access-ttl D] [--json]
  silentrefresh keys retire --db DSN [--access-ttl D] [--json]
  silentrefresh keys retire --db DSN --force [--key ID]... [--json]

rotate adds a new signing key; the old one is retired and goes on verifying
the tokens it signed. retire deletes the retired keys that no unexpired
token can need any more. --force deletes retired keys at once (the named
ones, or all): for a key that leaked; clients with tokens it signed refresh.
--access-ttl must be the servers' --access-ttl.`

func runKeys(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, keysUsage)
		if len(args) == 0 {
			return errors.New("keys: a subcommand is required")
		}
		return nil
	}
	verb := args[0]
	if verb != "list" && verb != "rotate" && verb != "retire" {
		fmt.Fprintln(stderr, keysUsage)
		return fmt.Errorf("keys: unknown subcommand %q", verb)
	}
	f := newOpFlags("keys "+verb, stderr)
	accessTTL := f.fs.Duration("access-ttl", session.DefaultAccessTTL, "the servers' access token lifetime: how long a retired key keeps verifying")
	var force bool
	var ids stringList
	if verb == "retire" {
		f.fs.BoolVar(&force, "force", false, "delete retired keys at once, although tokens they signed have not expired")
		f.fs.Var(&ids, "key", "with --force: the ID of a retired key to delete (repeatable; default every retired key)")
	}
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	if *accessTTL <= 0 {
		return fmt.Errorf("keys %s: --access-ttl must be a positive duration, got %v", verb, *accessTTL)
	}
	if len(ids) > 0 && !force {
		return fmt.Errorf("keys retire: --key needs --force; without it, retire deletes only the keys no token can need")
	}
	op, done, err := f.operator(ctx)
	if err != nil {
		return err
	}
	defer done()
	st, policy, now := op.Store, token.RotationPolicy{AccessTTL: *accessTTL}, time.Now()

	switch verb {
	case "list":
		keys, err := token.Keys(ctx, st, policy)
		if err != nil {
			return fmt.Errorf("keys list: %w", err)
		}
		views := admin.KeyViews(keys, now)
		if *f.asJSON {
			return writeJSONTo(stdout, map[string]any{"keys": views})
		}
		return keyTable(stdout, views)
	case "rotate":
		rot, err := token.Rotate(ctx, st, now, policy)
		if err != nil {
			return fmt.Errorf("keys rotate: %w", err)
		}
		out := map[string]any{"new": admin.KeyView(rot.New, now), "retired": admin.KeyViews(rot.Retired, now)}
		if *f.asJSON {
			return writeJSONTo(stdout, out)
		}
		fmt.Fprintf(stdout, "new signing key %s; servers sign with it within %v\n", rot.New.ID, token.IssuerMaxAge)
		return keyTable(stdout, admin.KeyViews(append([]token.KeyInfo{rot.New}, rot.Retired...), now))
	}
	var gone []token.KeyInfo
	if force {
		gone, err = token.ForceRetire(ctx, st, ids...)
	} else {
		gone, err = token.Retire(ctx, st, now, policy)
	}
	if err != nil {
		return fmt.Errorf("keys retire: %w", err)
	}
	views := admin.KeyViews(gone, now)
	if *f.asJSON {
		return writeJSONTo(stdout, map[string]any{"retired": views})
	}
	fmt.Fprintf(stdout, "%d key(s) deleted\n", len(gone))
	if len(gone) == 0 {
		return nil
	}
	return keyTable(stdout, views)
}

func keyTable(w io.Writer, keys []admin.KeyJSON) error {
	tw := newTable(w, "ID", "ALG", "CREATED", "STAGE", "REMOVABLE AT")
	for _, k := range keys {
		removable := "-"
		if k.RemovableAt != nil {
			removable = stamp(*k.RemovableAt)
		}
		tw.row(k.ID, k.Algorithm, stamp(k.CreatedAt), k.Stage, removable)
	}
	return tw.flush()
}
