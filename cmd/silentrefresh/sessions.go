package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/silentrefresh/silentrefresh/admin"
	"github.com/silentrefresh/silentrefresh/user"
)

const sessionUsage = `usage:
  silentrefresh session list   --db DSN --user NAME [--json]
  silentrefresh session revoke --db DSN (--user NAME | --session ID) [--json]`

func runSession(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, sessionUsage)
		if len(args) == 0 {
			return errors.New("session: a subcommand is required")
		}
		return nil
	}
	switch args[0] {
	case "list":
		return runSessionList(ctx, args[1:], stdout, stderr)
	case "revoke":
		return runSessionRevoke(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintln(stderr, sessionUsage)
	return fmt.Errorf("session: unknown subcommand %q", args[0])
}

func runSessionList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newOpFlags("session list", stderr)
	name := f.fs.String("user", "", "the user whose live sessions to list")
	if err := f.parse(args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("session list: --user is required")
	}
	if err := user.ValidUsername(*name); err != nil {
		return fmt.Errorf("session list: --user: %w", err)
	}
	op, done, err := f.operator(ctx)
	if err != nil {
		return err
	}
	defer done()
	infos, err := op.Sessions(ctx, *name)
	if err != nil {
		return fmt.Errorf("session list: %w", err)
	}
	views := make([]admin.SessionJSON, 0, len(infos))
	for _, in := range infos {
		views = append(views, admin.SessionView(in))
	}
	if *f.asJSON {
		return writeJSONTo(stdout, map[string]any{"username": *name, "sessions": views})
	}
	tw := newTable(stdout, "ID", "CLIENT", "CREATED", "LAST REFRESHED", "EXPIRES")
	for _, v := range views {
		client := v.ClientID
		if client == "" {
			client = "-"
		}
		tw.row(v.ID, client, stamp(v.CreatedAt), stamp(v.LastRefreshedAt), stamp(v.ExpiresAt))
	}
	return tw.flush()
}

func runSessionRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newOpFlags("session revoke", stderr)
	name := f.fs.String("user", "", "revoke every session of this user")
	id := f.fs.String("session", "", "revoke the session with this ID")
	if err := f.parse(args); err != nil {
		return err
	}
	if (*name == "") == (*id == "") {
		return errors.New("session revoke: give exactly one of --user NAME and --session ID")
	}
	if *name != "" {
		if err := user.ValidUsername(*name); err != nil {
			return fmt.Errorf("session revoke: --user: %w", err)
		}
	}
	if *id != "" {
		// Refuse a malformed ID before opening (and maybe creating) the
		// database.
		if err := admin.ValidSessionID(*id); err != nil {
			return fmt.Errorf("session revoke: --session: %w", err)
		}
	}
	op, done, err := f.operator(ctx)
	if err != nil {
		return err
	}
	defer done()
	out := admin.ResultJSON{Username: *name}
	if *name != "" {
		n, err := op.RevokeUserSessions(ctx, *name)
		if err != nil {
			return fmt.Errorf("session revoke: %w", err)
		}
		out.Changed, out.RevokedSessions = n > 0, n
	} else {
		res, err := op.RevokeSession(ctx, *id)
		if err != nil {
			return fmt.Errorf("session revoke: %w", err)
		}
		out.Changed, out.RevokedSessions = res.Changed, res.Revoked
	}
	if *f.asJSON {
		return writeJSONTo(stdout, out)
	}
	fmt.Fprintf(stdout, "%d session(s) revoked\n", out.RevokedSessions)
	return nil
}
