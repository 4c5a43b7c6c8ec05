// Command silentrefresh runs the silentrefresh server and its tools:
//
//	silentrefresh serve      run the server
//	silentrefresh user       manage users: add, list, disable, enable, delete, passwd, claims
//	silentrefresh session    list and revoke the sessions of a user
//	silentrefresh keys       list, rotate and retire the signing keys
//	silentrefresh client     register OAuth2 clients: add, list, remove
//	silentrefresh demo       the whole story in one command
//	silentrefresh load       drive a running deployment
//
// Run "silentrefresh <command> -h" for a command's flags. Every flag can
// also be set as an environment variable: --access-ttl as
// SILENTREFRESH_ACCESS_TTL, and so on.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the server", runServe},
		{"user", "manage users (add, list, disable, enable, delete, passwd, claims)", runUser},
		{"session", "list and revoke the sessions of a user (list, revoke)", runSession},
		{"keys", "list, rotate and retire the signing keys", runKeys},
		{"client", "manage OAuth2 clients (add, list, remove)", runClient},
		{"demo", "the whole story in one command", runDemo},
		{"load", "drive a running deployment", runLoad},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) && !errors.Is(err, errSilent) {
			fmt.Fprintln(os.Stderr, "silentrefresh:", err)
		}
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(1)
	}
}

// errSilent is returned by a command that has already reported its failure.
var errSilent = errors.New("failed")

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return errors.New("a command is required")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdin, stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: silentrefresh <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'silentrefresh <command> -h' for the flags of a command.")
}

// parseFlags parses args into fs after taking defaults from the
// environment: flag --access-ttl is read from SILENTREFRESH_ACCESS_TTL.
// Flags given on the command line win over the environment.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "SILENTREFRESH_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("environment %s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	return fs.Parse(args)
}

// positive checks duration flags: each must be above zero.
func positive(flags map[string]time.Duration) error {
	for name, d := range flags {
		if d <= 0 {
			return fmt.Errorf("--%s must be a positive duration, got %v", name, d)
		}
	}
	return nil
}
