package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

func runUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "claims" {
		return runUserClaims(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "add" {
		return runUserOp(ctx, args, stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", defaultDSN, "database: sqlite:PATH or postgres://...")
	name := fs.String("username", "", "the new user's name")
	fromStdin := fs.Bool("password-stdin", false, "read the password from standard input (the only way: never on the command line)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := user.ValidUsername(*name); err != nil {
		return fmt.Errorf("user add: --username: %w", err)
	}
	if !*fromStdin {
		return errors.New("user add: --password-stdin is required; passwords are read from standard input only")
	}
	pw, err := readPassword(stdin)
	if err != nil {
		return fmt.Errorf("user add: %w", err)
	}
	hash, err := user.HashPassword(pw)
	if err != nil {
		return fmt.Errorf("user add: %w", err)
	}
	st, err := openStore(ctx, *db)
	if err != nil {
		return fmt.Errorf("user add: open database: %w", err)
	}
	defer st.Close()
	u := user.User{ID: token.NewID(), Username: *name, PasswordHash: hash, CreatedAt: time.Now().UTC()}
	if err := st.CreateUser(ctx, u); err != nil {
		if errors.Is(err, user.ErrExists) {
			return fmt.Errorf("user add: username %q is taken", *name)
		}
		return fmt.Errorf("user add: %w", err)
	}
	fmt.Fprintf(stdout, "created user %s (sub %s)\n", u.Username, u.ID)
	return nil
}

// readPassword reads the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, user.MaxPasswordLen+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("the password on standard input is empty")
	}
	return pw, nil
}
