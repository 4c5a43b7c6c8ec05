package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/silentrefresh/silentrefresh/registry"
	"github.com/silentrefresh/silentrefresh/session"
)

// runClient is "client add|list|remove": the registry of OAuth2 clients.
func runClient(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	usage := "usage: silentrefresh client add --id ID [--secret-stdin | --generate-secret] [--scopes a,b]\n" +
		"       silentrefresh client list\n" +
		"       silentrefresh client remove --id ID"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("client: a subcommand is required: add, list or remove")
	}
	switch args[0] {
	case "add":
		return runClientAdd(ctx, args[1:], stdin, stdout, stderr)
	case "list":
		return runClientList(ctx, args[1:], stdout, stderr)
	case "remove":
		return runClientRemove(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("client: unknown subcommand %q; use add, list or remove", args[0])
}

func runClientAdd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("client add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", defaultDSN, "database: sqlite:PATH or postgres://...")
	id := fs.String("id", "", "the client_id")
	fromStdin := fs.Bool("secret-stdin", false, fmt.Sprintf("make it a confidential client whose secret (at least %d bytes) is read from standard input", registry.MinSecretLen))
	generate := fs.Bool("generate-secret", false, "make it a confidential client with a new random secret, printed once")
	scopes := fs.String("scopes", "", "the scopes it may ask for, comma- or space-separated (default: any)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("client add: unexpected arguments %q", fs.Args())
	}
	if err := registry.ValidID(*id); err != nil {
		return fmt.Errorf("client add: --id: %w", err)
	}
	if *fromStdin && *generate {
		return errors.New("client add: --secret-stdin and --generate-secret exclude one another")
	}
	c := registry.Client{ID: *id, CreatedAt: time.Now().UTC()}
	if *scopes != "" {
		canon, err := session.ParseScope(strings.ReplaceAll(*scopes, ",", " "))
		if err != nil {
			return fmt.Errorf("client add: --scopes: %w", err)
		}
		c.Scopes = strings.Fields(canon)
	}
	var secret string
	switch {
	case *fromStdin:
		line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("client add: read secret: %w", err)
		}
		secret = strings.TrimRight(line, "\r\n")
	case *generate:
		s, err := registry.GenerateSecret()
		if err != nil {
			return fmt.Errorf("client add: %w", err)
		}
		secret = s
	}
	if secret != "" || *fromStdin {
		h, err := registry.HashSecret(secret)
		if err != nil {
			return fmt.Errorf("client add: %w", err)
		}
		c.SecretHash = h
	}
	st, err := openStore(ctx, *db)
	if err != nil {
		return fmt.Errorf("client add: open database: %w", err)
	}
	defer st.Close()
	if err := st.AddClient(ctx, c); err != nil {
		if errors.Is(err, registry.ErrExists) {
			return fmt.Errorf("client add: client_id %q is taken", c.ID)
		}
		return fmt.Errorf("client add: %w", err)
	}
	kind := "public"
	if c.Confidential() {
		kind = "confidential"
	}
	fmt.Fprintf(stdout, "registered %s client %s\n", kind, c.ID)
	if *generate {
		fmt.Fprintf(stdout, "client_secret: %s\n(shown once: only its hash is stored)\n", secret)
	}
	return nil
}

func runClientList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("client list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", defaultDSN, "database: sqlite:PATH or postgres://...")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, err := openStore(ctx, *db)
	if err != nil {
		return fmt.Errorf("client list: open database: %w", err)
	}
	defer st.Close()
	cs, err := st.Clients(ctx)
	if err != nil {
		return fmt.Errorf("client list: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT_ID\tTYPE\tSCOPES\tCREATED")
	for _, c := range cs {
		kind, scopes := "public", "(any)"
		if c.Confidential() {
			kind = "confidential"
		}
		if c.Scopes != nil {
			scopes = strings.Join(c.Scopes, " ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.ID, kind, scopes, c.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

func runClientRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("client remove", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", defaultDSN, "database: sqlite:PATH or postgres://...")
	id := fs.String("id", "", "the client_id")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *id == "" {
		return errors.New("client remove: --id is required")
	}
	st, err := openStore(ctx, *db)
	if err != nil {
		return fmt.Errorf("client remove: open database: %w", err)
	}
	defer st.Close()
	if err := st.RemoveClient(ctx, *id); err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return fmt.Errorf("client remove: no client %q", *id)
		}
		return fmt.Errorf("client remove: %w", err)
	}
	fmt.Fprintf(stdout, "removed client %s\n", *id)
	return nil
}
