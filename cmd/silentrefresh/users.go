package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/silentrefresh/silentrefresh/admin"
	"github.com/silentrefresh/silentrefresh/store/dsn"
	"github.com/silentrefresh/silentrefresh/user"
)

const userUsage = `usage:
  silentrefresh user add     --db DSN --username NAME --password-stdin
  silentrefresh user list    --db DSN [--json]
  silentrefresh user disable --db DSN --username NAME [--json]
  silentrefresh user enable  --db DSN --username NAME [--json]
  silentrefresh user delete  --db DSN --username NAME [--json]
  silentrefresh user passwd  --db DSN --username NAME [--json]   (new password on standard input)
  silentrefresh user claims  NAME --db DSN [--set k=v]... [--unset k]... [--clear]

disable, delete and passwd revoke every session of the user at once; a
change of claims reaches the user's tokens at their next refresh.`

// opFlags are the flags every operator subcommand takes.
type opFlags struct {
	fs     *flag.FlagSet
	db     *string
	asJSON *bool
}

func newOpFlags(name string, stderr io.Writer) opFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return opFlags{
		fs:     fs,
		db:     fs.String("db", defaultDSN, "database: sqlite:PATH or postgres://..."),
		asJSON: fs.Bool("json", false, "print one JSON object instead of a table"),
	}
}

// parse parses args and refuses positional arguments.
func (f opFlags) parse(args []string) error {
	if err := parseFlags(f.fs, args); err != nil {
		return err
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", f.fs.Name(), f.fs.Args())
	}
	return nil
}

// operator opens the database and returns an Operator on it and its
// closer.
//
// Unlike "user add" and "serve", it does not create a SQLite file that is
// not there: a mistyped path is an error, not a new empty database.
func (f opFlags) operator(ctx context.Context) (*admin.Operator, func(), error) {
	if path, ok := dsn.SQLitePath(*f.db); ok && path != "" {
		if _, err := os.Stat(path); err != nil {
			return nil, nil, fmt.Errorf("%s: --db %s: no database there: %w", f.fs.Name(), *f.db, err)
		}
	}
	st, err := openStore(ctx, *f.db)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: open database: %w", f.fs.Name(), err)
	}
	return &admin.Operator{Store: st}, func() { st.Close() }, nil
}

func runUserOp(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, userUsage)
		if len(args) == 0 {
			return errors.New("user: a subcommand is required")
		}
		return nil
	}
	switch args[0] {
	case "list":
		return runUserList(ctx, args[1:], stdout, stderr)
	case "disable", "enable", "delete", "passwd":
		return runUserChange(ctx, args[0], args[1:], stdin, stdout, stderr)
	}
	fmt.Fprintln(stderr, userUsage)
	return fmt.Errorf("user: unknown subcommand %q", args[0])
}

func runUserList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newOpFlags("user list", stderr)
	if err := f.parse(args); err != nil {
		return err
	}
	op, done, err := f.operator(ctx)
	if err != nil {
		return err
	}
	defer done()
	us, err := op.Users(ctx)
	if err != nil {
		return fmt.Errorf("user list: %w", err)
	}
	views := make([]admin.UserJSON, 0, len(us))
	for _, u := range us {
		views = append(views, admin.UserView(u))
	}
	if *f.asJSON {
		return writeJSONTo(stdout, map[string]any{"users": views})
	}
	tw := newTable(stdout, "USERNAME", "ID", "CREATED", "STATUS")
	for _, v := range views {
		status := "enabled"
		if v.Disabled {
			status = "disabled " + stamp(*v.DisabledAt)
		}
		tw.row(v.Username, v.ID, stamp(v.CreatedAt), status)
	}
	return tw.flush()
}

func runUserChange(ctx context.Context, verb string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f := newOpFlags("user "+verb, stderr)
	name := f.fs.String("username", "", "the user's name")
	if verb == "passwd" {
		// Accepted for symmetry with "user add"; the password is read
		// from standard input in any case.
		f.fs.Bool("password-stdin", true, "read the new password from standard input (the only way)")
	}
	if err := f.parse(args); err != nil {
		return err
	}
	if *name == "" {
		return fmt.Errorf("user %s: --username is required", verb)
	}
	if err := user.ValidUsername(*name); err != nil {
		return fmt.Errorf("user %s: --username: %w", verb, err)
	}
	var password string
	if verb == "passwd" {
		pw, err := readPassword(stdin)
		if err != nil {
			return fmt.Errorf("user passwd: %w", err)
		}
		password = pw
	}
	op, done, err := f.operator(ctx)
	if err != nil {
		return err
	}
	defer done()
	var res admin.Result
	switch verb {
	case "disable":
		res, err = op.DisableUser(ctx, *name)
	case "enable":
		res, err = op.EnableUser(ctx, *name)
	case "delete":
		res, err = op.DeleteUser(ctx, *name)
	case "passwd":
		res, err = op.SetPassword(ctx, *name, password)
	}
	if err != nil {
		return fmt.Errorf("user %s: %w", verb, err)
	}
	out := admin.ResultJSON{Username: *name, Changed: res.Changed, RevokedSessions: res.Revoked}
	if *f.asJSON {
		return writeJSONTo(stdout, out)
	}
	past := map[string]string{"disable": "disabled", "enable": "enabled", "delete": "deleted", "passwd": "new password for"}[verb]
	if !res.Changed {
		fmt.Fprintf(stdout, "user %s: already %s; nothing changed\n", *name, past)
		return nil
	}
	fmt.Fprintf(stdout, "%s user %s; %d session(s) revoked\n", past, *name, res.Revoked)
	return nil
}

// writeJSONTo prints v as one indented JSON object.
func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// stamp formats an instant for a table: UTC, to the second.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// table prints aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

func (t *table) flush() error { return t.tw.Flush() }
