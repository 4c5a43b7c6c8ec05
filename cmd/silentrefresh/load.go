package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/silentrefresh/silentrefresh/internal/loadgen"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store/dsn"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// loadFlags are the flags of "load".
type loadFlags struct {
	urls                  stringList
	users, workers        int
	duration, think       time.Duration
	timeout               time.Duration
	path, api             string
	createUsers           bool
	db                    string
	credentials, saveCred string
	timeline              string
	json, logout          bool
}

func runLoad(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var f loadFlags
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&f.urls, "url", "base URL of a replica, e.g. http://127.0.0.1:8080 (repeatable, or comma-separated; requests are spread over them)")
	fs.IntVar(&f.users, "users", 50, "simulated users, one session and one client.Client each (with --credentials: default one per line)")
	fs.IntVar(&f.workers, "workers", 8, "goroutines sending requests at once for each user")
	fs.DurationVar(&f.duration, "duration", 30*time.Second, "how long to send requests")
	fs.DurationVar(&f.think, "think", 0, "mean pause of a worker between two requests (0: none, as fast as the deployment answers)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "limit of one request, a wait on a refresh included")
	fs.StringVar(&f.path, "path", loadgen.DefaultPath, "the resource each worker requests with GET and the access token")
	fs.StringVar(&f.api, "api", string(loadgen.APIJSON), "how to log in and refresh: json (/api/auth/...) or oauth2 (/oauth2/token)")
	fs.BoolVar(&f.createUsers, "create-users", false, "create --users new users in --db first (names load-XXXXXXXX-NNN, random passwords)")
	fs.StringVar(&f.db, "db", defaultDSN, "database for --create-users: sqlite:PATH or postgres://...")
	fs.StringVar(&f.credentials, "credentials", "", "file of username:password lines to log in with")
	fs.StringVar(&f.saveCred, "save-credentials", "", "with --create-users: write the new users' username:password lines to this file (mode 0600)")
	fs.StringVar(&f.timeline, "timeline", "", "write an SVG timeline of the run to this file")
	fs.BoolVar(&f.json, "json", false, "print the summary as one JSON object (the live view goes to standard error)")
	fs.BoolVar(&f.logout, "logout", true, "log every session out at the end, so the deployment does not keep them")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: silentrefresh load --url URL [--url URL...] (--create-users --db DSN | --credentials FILE) [flags]

Drives a running deployment: logs in --users users and sends requests from
--workers goroutines per user for --duration, each user a Go client.Client
that refreshes silently. The exit status is non-zero if a request failed or
the servers detected a reused refresh token.

Every flag may also be set as SILENTREFRESH_<FLAG>.

flags:`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("load: unexpected arguments %q", fs.Args())
	}
	usersSet := false
	fs.Visit(func(fl *flag.Flag) { usersSet = usersSet || fl.Name == "users" })
	if err := f.validate(); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	out, live := stdout, stdout
	if f.json {
		live = stderr
	}

	var creds []loadgen.Credentials
	if f.createUsers {
		var err error
		if creds, err = createLoadUsers(ctx, f.db, f.users); err != nil {
			return fmt.Errorf("load: %w", err)
		}
		if f.saveCred != "" {
			if err := saveCredentials(f.saveCred, creds); err != nil {
				return fmt.Errorf("load: %w", err)
			}
		}
		if !f.json {
			fmt.Fprintf(out, "created %d users %s…%s in %s\n", len(creds), creds[0].Username, creds[len(creds)-1].Username, dsn.Redact(f.db))
		}
	} else {
		file, err := os.Open(f.credentials)
		if err != nil {
			return fmt.Errorf("load: --credentials: %w", err)
		}
		creds, err = loadgen.ReadCredentials(file)
		file.Close()
		if err != nil {
			return fmt.Errorf("load: --credentials %s: %w", f.credentials, err)
		}
		if usersSet {
			// More sessions than credentials: users log in more than once,
			// one session each.
			all := make([]loadgen.Credentials, f.users)
			for i := range all {
				all[i] = creds[i%len(creds)]
			}
			creds = all
		}
	}

	gen, err := loadgen.New(loadgen.Config{
		URLs:           f.urls,
		API:            loadgen.API(f.api),
		Path:           f.path,
		Users:          creds,
		Workers:        f.workers,
		Duration:       f.duration,
		Think:          f.think,
		RequestTimeout: f.timeout,
	})
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer gen.Close()
	if !f.json {
		fmt.Fprintf(out, "silentrefresh load: %d users × %d workers for %v against %s\n", len(creds), f.workers, f.duration, strings.Join(f.urls, " "))
	}
	if err := gen.Login(ctx); err != nil {
		return fmt.Errorf("load: %w", err)
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		gen.Watch(watchCtx, live, isTerminal(live))
	}()
	runErr := gen.Run(ctx)
	stopWatch()
	<-watchDone
	if runErr != nil {
		return fmt.Errorf("load: %w", runErr)
	}
	interrupted := ctx.Err()
	// An interrupted run is still summed up; the deployment is asked
	// without the cancelled context.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	s := gen.Summary(sctx)
	s.Mode = "load"
	s.AddCheck("no request failed", s.Failures == 0 && s.UnexpectedSessionsEnded == 0,
		fmt.Sprintf("%d of %d requests failed; %d sessions ended", s.Failures, s.Requests, s.SessionsEnded))
	if s.ReuseDetections != nil {
		// Both revoke a session as a theft; honest clients cause neither.
		superseded := s.ServerRefreshes[string(session.ReasonSuperseded)]
		detail := fmt.Sprintf("the servers counted %d reused, %d superseded", *s.ReuseDetections, superseded)
		if s.ServerMetricsError != "" {
			detail += " (not every replica could be read; see above)"
		}
		s.AddCheck("no refresh token reuse detected", *s.ReuseDetections == 0 && superseded == 0, detail)
	}
	if f.logout {
		if err := gen.Logout(sctx); err != nil {
			fmt.Fprintf(stderr, "silentrefresh load: logging out: %v\n", err)
		}
	}
	if f.timeline != "" {
		title := fmt.Sprintf("silentrefresh load: %d users × %d workers against %d replica(s)", s.Users, s.Workers, len(s.URLs))
		sub := fmt.Sprintf("%s · %d requests (%.0f/s), %d failed · %d refreshes · p50 %.1f ms, p99 %.1f ms, longest wait on a refresh %.0f ms",
			strings.Join(s.URLs, " "), s.Requests, s.RequestsPerSecond, s.Failures, s.Refreshes, s.LatencyP50MS, s.LatencyP99MS, s.LongestWaitMS)
		if err := writeSVG(f.timeline, gen.Timeline(title, sub, 0)); err != nil {
			return fmt.Errorf("load: %w", err)
		}
	}
	if err := writeSummary(out, s, f.json, f.timeline); err != nil {
		return err
	}
	if interrupted != nil {
		return fmt.Errorf("load: interrupted: %w", context.Cause(ctx))
	}
	if !s.OK {
		fmt.Fprintln(stderr, "silentrefresh load: FAILED (see the checks above)")
		return errSilent
	}
	return nil
}

func (f *loadFlags) validate() error {
	if len(f.urls) == 0 {
		return errors.New("--url is required")
	}
	if f.users < 1 {
		return fmt.Errorf("--users must be at least 1, got %d", f.users)
	}
	if f.workers < 1 {
		return fmt.Errorf("--workers must be at least 1, got %d", f.workers)
	}
	if err := positive(map[string]time.Duration{"duration": f.duration, "timeout": f.timeout}); err != nil {
		return err
	}
	if f.think < 0 {
		return fmt.Errorf("--think must not be negative, got %v", f.think)
	}
	switch loadgen.API(f.api) {
	case loadgen.APIJSON, loadgen.APIOAuth2:
	default:
		return fmt.Errorf("--api must be json or oauth2, got %q", f.api)
	}
	switch {
	case f.createUsers && f.credentials != "":
		return errors.New("give --create-users or --credentials, not both")
	case !f.createUsers && f.credentials == "":
		return errors.New("users are needed: --create-users (with --db) or --credentials FILE")
	case f.saveCred != "" && !f.createUsers:
		return errors.New("--save-credentials needs --create-users")
	}
	return nil
}

// createLoadUsers creates n users with random passwords in the database
// dsn names, hashed as "user add" hashes them.
func createLoadUsers(ctx context.Context, dsn string, n int) ([]loadgen.Credentials, error) {
	st, err := openStore(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	defer st.Close()
	run := make([]byte, 4)
	if _, err := rand.Read(run); err != nil {
		return nil, fmt.Errorf("create users: %w", err)
	}
	prefix := "load-" + hex.EncodeToString(run)
	creds := make([]loadgen.Credentials, n)
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(runtime.GOMAXPROCS(0))
	for i := range creds {
		eg.Go(func() error {
			pw := make([]byte, 18)
			if _, err := rand.Read(pw); err != nil {
				return fmt.Errorf("create users: %w", err)
			}
			c := loadgen.Credentials{Username: fmt.Sprintf("%s-%03d", prefix, i+1), Password: base64.RawURLEncoding.EncodeToString(pw)}
			hash, err := user.HashPassword(c.Password)
			if err != nil {
				return fmt.Errorf("create user %s: %w", c.Username, err)
			}
			if err := st.CreateUser(ctx, user.User{ID: token.NewID(), Username: c.Username, PasswordHash: hash, CreatedAt: time.Now().UTC()}); err != nil {
				return fmt.Errorf("create user %s: %w", c.Username, err)
			}
			creds[i] = c
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return creds, nil
}

// saveCredentials writes username:password lines, readable by the owner
// only.
func saveCredentials(path string, creds []loadgen.Credentials) error {
	var b strings.Builder
	for _, c := range creds {
		fmt.Fprintf(&b, "%s:%s\n", c.Username, c.Password)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("--save-credentials: %w", err)
	}
	return nil
}

// writeSVG writes a timeline to path.
func writeSVG(path string, tl loadgen.Timeline) error {
	var b strings.Builder
	if err := tl.WriteSVG(&b); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write timeline: %w", err)
	}
	return nil
}
