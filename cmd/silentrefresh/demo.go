package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/internal/clock"
	"github.com/silentrefresh/silentrefresh/internal/faultproxy"
	"github.com/silentrefresh/silentrefresh/internal/loadgen"
	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// demoFlags are the flags of "demo".
type demoFlags struct {
	users, workers   int
	duration, think  time.Duration
	accessTTL, grace time.Duration
	timeline         string
	json             bool
	keyDrop          string
}

// The ways the demo drops the signing key.
const (
	// keyDropStaged: a new key signs first, and the old one is deleted a
	// moment later, so that no token the old key signed is still on its way
	// to a client when the key goes.
	keyDropStaged = "staged"
	// keyDropImmediate: a new key and the old one retired by force at
	// once (Server.RotateSigningKey, then ForceRetireSigningKeys).
	keyDropImmediate = "immediate"
)

// The users the demo gives a part: the attacked one and the one that runs
// as two processes sharing a token file.
const (
	victimUser = 0
	sharedUser = 1
)

// demoHashParams are cheap argon2id parameters for the demo's throwaway
// users, whose passwords live only as long as the demo: the demo is about
// tokens, not password hashing.
var demoHashParams = user.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

func runDemo(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var f demoFlags
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.users, "users", 50, "simulated users, one session and one client.Client each")
	fs.IntVar(&f.workers, "workers", 8, "goroutines sending requests at once for each user")
	fs.DurationVar(&f.duration, "duration", 20*time.Second, "how long the clients send requests")
	fs.DurationVar(&f.accessTTL, "access-ttl", 2*time.Second, "access token lifetime")
	fs.DurationVar(&f.grace, "grace", 2*time.Second, "grace window of the server")
	fs.DurationVar(&f.think, "think", 200*time.Millisecond, "mean pause of a worker between two requests (0: none)")
	fs.StringVar(&f.timeline, "timeline", "", "write an SVG timeline of the run to this file")
	fs.BoolVar(&f.json, "json", false, "print the summary as one JSON object (the live view goes to standard error)")
	fs.StringVar(&f.keyDrop, "key-drop", keyDropImmediate, "how the signing key is dropped: staged (a new key signs first; the old one is deleted once the requests then in flight have ended) or immediate (a new key and the old one retired by force at once)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: silentrefresh demo [flags]

Runs a server on loopback over a temporary SQLite file and many simulated
users against it, each a Go client.Client with several workers, and injects
on a schedule: the signing key dropped (every access token refused at once),
refresh answers lost after the server rotated, two processes sharing one
token file, and an attacker replaying a stolen refresh token after the grace
window. The exit status is non-zero if anything failed that should not have.

flags:`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("demo: unexpected arguments %q", fs.Args())
	}
	if err := f.validate(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	out, live := stdout, stdout
	if f.json {
		live = stderr
	}
	tty := isTerminal(live)

	dir, err := os.MkdirTemp("", "silentrefresh-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dir)
	dbPath := filepath.Join(dir, "demo.db")
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("demo: open database: %w", err)
	}
	defer st.Close()
	creds, err := demoUsers(ctx, st, f.users)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	base := "http://" + ln.Addr().String()
	quiet := slog.New(slog.DiscardHandler)
	srv, err := server.New(ctx, server.Config{
		Store:     st,
		Issuer:    base,
		AccessTTL: f.accessTTL,
		Grace:     f.grace,
		Logger:    quiet,
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("demo: %w", err)
	}
	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	srvDone := make(chan error, 1)
	go func() { srvDone <- serveUntilDone(srvCtx, ln, srv, quiet, 5*time.Second, func() {}) }()
	defer func() {
		stopServer()
		<-srvDone
	}()

	target, _ := url.Parse(base)
	proxy, err := faultproxy.New(faultproxy.Config{Target: target})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	phs := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(quiet.Handler(), slog.LevelError)}
	go phs.Serve(pln)
	defer phs.Close()
	proxyURL := "http://" + pln.Addr().String()

	gen, err := loadgen.New(loadgen.Config{
		URLs:     []string{base},
		AuthURL:  proxyURL,
		Users:    creds,
		Workers:  f.workers,
		Duration: f.duration,
		Think:    f.think,
		Processes: func(i int) int {
			if i == sharedUser {
				return 2
			}
			return 1
		},
		TokenDir: dir,
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer gen.Close()
	sc := newScenario(gen, srv, proxy, base, f)
	if !f.json {
		sc.intro(out, dbPath, proxyURL)
	}
	if err := gen.Login(ctx); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	gen.User(victimUser).SetNote("attacked")
	gen.User(sharedUser).SetNote("2 processes, 1 file")

	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		gen.Watch(watchCtx, live, tty)
	}()
	scCtx, stopScenario := context.WithCancel(ctx)
	scDone := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(scDone)
		sc.run(scCtx, start)
	}()
	runErr := gen.Run(ctx)
	stopScenario()
	<-scDone
	stopWatch()
	<-watchDone
	if runErr != nil {
		return fmt.Errorf("demo: %w", runErr)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("demo: interrupted: %w", context.Cause(ctx))
	}

	s := gen.Summary(ctx)
	s.Mode = "demo"
	sc.check(&s)
	if f.timeline != "" {
		if err := sc.writeTimeline(f.timeline, s); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	if err := writeSummary(out, s, f.json, f.timeline); err != nil {
		return err
	}
	if !s.OK {
		fmt.Fprintln(stderr, "silentrefresh demo: FAILED: something failed that should not have (see the checks above)")
		return errSilent
	}
	return nil
}

func (f *demoFlags) validate() error {
	if f.users < 2 {
		return fmt.Errorf("--users must be at least 2 (one is attacked, one runs as two processes), got %d", f.users)
	}
	if f.workers < 1 {
		return fmt.Errorf("--workers must be at least 1, got %d", f.workers)
	}
	if err := positive(map[string]time.Duration{"duration": f.duration, "access-ttl": f.accessTTL, "grace": f.grace}); err != nil {
		return err
	}
	if f.think < 0 {
		return fmt.Errorf("--think must not be negative, got %v", f.think)
	}
	if f.keyDrop != keyDropStaged && f.keyDrop != keyDropImmediate {
		return fmt.Errorf("--key-drop must be %s or %s, got %q", keyDropStaged, keyDropImmediate, f.keyDrop)
	}
	// The attack replays a token rotated more than the grace window ago,
	// and the first rotation comes within an access token's lifetime.
	if need := f.accessTTL + f.grace + time.Second; f.duration < need {
		return fmt.Errorf("--duration %v is too short for the attack: it needs at least --access-ttl + --grace + 1s = %v", f.duration, need)
	}
	return nil
}

// demoUsers creates n users with random passwords in st.
func demoUsers(ctx context.Context, st user.Store, n int) ([]loadgen.Credentials, error) {
	creds := make([]loadgen.Credentials, n)
	for i := range creds {
		pw := make([]byte, 18)
		if _, err := rand.Read(pw); err != nil {
			return nil, fmt.Errorf("create users: %w", err)
		}
		c := loadgen.Credentials{Username: fmt.Sprintf("user-%02d", i+1), Password: base64.RawURLEncoding.EncodeToString(pw)}
		hash, err := user.HashPasswordParams(c.Password, demoHashParams)
		if err != nil {
			return nil, fmt.Errorf("create users: %w", err)
		}
		if err := st.CreateUser(ctx, user.User{ID: token.NewID(), Username: c.Username, PasswordHash: hash, CreatedAt: time.Now().UTC()}); err != nil {
			return nil, fmt.Errorf("create user %s: %w", c.Username, err)
		}
		creds[i] = c
	}
	return creds, nil
}

// scenario injects the demo's faults on a schedule and remembers what
// happened, for the checks.
type scenario struct {
	gen   *loadgen.Generator
	srv   *server.Server
	proxy *faultproxy.Proxy
	base  string // the server itself, not the proxy
	f     demoFlags

	// Written by run, read after it returned.
	keyDropped   bool
	keyErr       error
	dropped      uint64 // refresh answers the proxy dropped
	attacked     bool
	attackReason string // the server's error_description for the stolen token
	attackErr    error
	rotatedAgo   time.Duration // how long before the attack the stolen token had been rotated
}

func newScenario(gen *loadgen.Generator, srv *server.Server, proxy *faultproxy.Proxy, base string, f demoFlags) *scenario {
	return &scenario{gen: gen, srv: srv, proxy: proxy, base: base, f: f}
}

// schedule returns when each fault is injected, as offsets from the start.
func (sc *scenario) schedule() (keyDrop, dropFrom, dropTo, attack time.Duration) {
	d := sc.f.duration
	frac := func(x float64) time.Duration { return time.Duration(x * float64(d)) }
	keyDrop = frac(0.25)
	dropFrom = frac(0.40)
	dropTo = min(dropFrom+max(sc.f.accessTTL, frac(0.2)), frac(0.65))
	attack = frac(0.70)
	return
}

func (sc *scenario) intro(w io.Writer, dbPath, proxyURL string) {
	keyDrop, dropFrom, dropTo, attack := sc.schedule()
	fmt.Fprintf(w, "silentrefresh demo\n")
	fmt.Fprintf(w, "  server   %s over SQLite %s; access tokens live %v, grace %v\n", sc.base, dbPath, sc.f.accessTTL, sc.f.grace)
	fmt.Fprintf(w, "           refreshes go through a fault-injecting proxy at %s\n", proxyURL)
	fmt.Fprintf(w, "  clients  %d users × %d workers for %v, each user a client.Client\n", sc.f.users, sc.f.workers, sc.f.duration)
	fmt.Fprintf(w, "           user-%02d runs as two processes sharing one token file\n", sharedUser+1)
	what := "every access token in use is refused"
	if sc.f.keyDrop == keyDropStaged {
		what = "the access tokens it signed are refused before they expire"
	}
	fmt.Fprintf(w, "  faults   %5.1fs  signing key dropped: %s\n", keyDrop.Seconds(), what)
	fmt.Fprintf(w, "           %5.1fs  refresh answers lost after the server rotated, until %.1fs\n", dropFrom.Seconds(), dropTo.Seconds())
	fmt.Fprintf(w, "           %5.1fs  an attacker replays user-%02d's stolen refresh token after the grace window\n\n", attack.Seconds(), victimUser+1)
}

// run injects the faults, from start, until ctx is done.
func (sc *scenario) run(ctx context.Context, start time.Time) {
	keyDrop, dropFrom, dropTo, attack := sc.schedule()
	gen := sc.gen
	if clock.SleepUntil(ctx, start.Add(keyDrop)) != nil {
		return
	}
	sc.keyErr = sc.dropKey(ctx)
	sc.keyDropped = sc.keyErr == nil

	if clock.SleepUntil(ctx, start.Add(dropFrom)) != nil {
		return
	}
	from := time.Now()
	sc.proxy.DropAll(true)
	gen.SetPhase("losing refresh answers")
	gen.Notef("fault: refresh answers lost after the server rotated, until %.1fs", dropTo.Seconds())
	ok := clock.SleepUntil(ctx, start.Add(dropTo)) == nil
	sc.proxy.DropAll(false)
	sc.dropped = sc.proxy.Stats().Dropped
	gen.Fault("refresh answers lost", from, time.Now())
	gen.SetPhase("")
	if !ok {
		return
	}
	gen.Notef("%d refresh answers were lost; the clients retried with the same token", sc.dropped)

	if clock.SleepUntil(ctx, start.Add(attack)) != nil {
		return
	}
	sc.attack(ctx, start)
}

// dropKey drops the signing key, so that the access tokens it signed are
// refused from now on, although they have not expired.
func (sc *scenario) dropKey(ctx context.Context) error {
	gen := sc.gen
	if sc.f.keyDrop == keyDropImmediate {
		now := time.Now()
		gen.SetPhase("signing key dropped")
		gen.Notef("fault: signing key dropped; every access token in use is now refused")
		gen.Fault("signing key dropped", now, now)
		if _, err := sc.srv.RotateSigningKey(ctx); err != nil {
			return err
		}
		_, err := sc.srv.ForceRetireSigningKeys(ctx)
		return err
	}
	// Staged: a new key signs first; the old one is deleted once every
	// request then in flight has ended. So no token the old key signed
	// reaches a client after a request sent before it: the client would
	// answer that request's 401 by replaying it once with that token,
	// without refreshing, and fail (see the immediate mode).
	rot, err := sc.srv.RotateSigningKey(ctx)
	if err != nil {
		return err
	}
	if !gen.WaitInFlight(ctx, 5*time.Second) && ctx.Err() == nil {
		gen.Notef("warning: requests still in flight 5s after the new signing key; dropping the old one anyway")
	}
	now := time.Now()
	gen.SetPhase("signing key dropped")
	gen.Notef("fault: old signing key dropped; the access tokens it signed are now refused")
	gen.Fault("signing key dropped", now, now)
	// Early invalidation: the retired keys go before the tokens they
	// signed have expired.
	ids := make([]string, len(rot.Retired))
	for i, k := range rot.Retired {
		ids[i] = k.ID
	}
	_, err = sc.srv.ForceRetireSigningKeys(ctx, ids...)
	return err
}

// attack replays the attacked user's login refresh token once it has been
// rotated for longer than the grace window.
func (sc *scenario) attack(ctx context.Context, start time.Time) {
	victim := sc.gen.User(victimUser)
	stolen := victim.LoginRefreshToken()
	deadline := start.Add(sc.f.duration - 500*time.Millisecond)
	for {
		rotated, ok := victim.RotatedAt(stolen)
		ready := rotated.Add(sc.f.grace + 300*time.Millisecond)
		if ok && !time.Now().Before(ready) {
			sc.rotatedAgo = time.Since(rotated)
			break
		}
		next := time.Now().Add(50 * time.Millisecond)
		if ok {
			next = ready
		}
		if next.After(deadline) || clock.SleepUntil(ctx, next) != nil {
			sc.attackErr = errors.New("the stolen token was not rotated long enough before the end of the run")
			return
		}
	}
	victim.ExpectEnd()
	now := time.Now()
	sc.gen.SetPhase("stolen refresh token replayed")
	_, err := client.JSONAPI(sc.base).Refresh(ctx, stolen)
	sc.attacked = true
	var re *client.RetrieveError
	switch {
	case err == nil:
		sc.attackErr = errors.New("the server accepted the stolen refresh token")
	case errors.As(err, &re):
		sc.attackReason = re.ErrorDescription
	default:
		sc.attackErr = err
	}
	sc.gen.Fault("stolen refresh token replayed", now, now)
	sc.gen.Notef("attack: user-%02d's refresh token, rotated %.1fs ago, replayed: the server answered %s",
		victimUser+1, sc.rotatedAgo.Seconds(), describeAttack(sc.attackReason, sc.attackErr))
	sc.gen.SetPhase("")
}

func describeAttack(reason string, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("invalid_grant (%s)", reason)
}

// check adds the demo's checks to s.
func (sc *scenario) check(s *loadgen.Summary) {
	victim, shared := sc.gen.User(victimUser), sc.gen.User(sharedUser)
	// The clients share tokens under a lock, so none is ever superseded
	// (which would revoke its session as a theft).
	superseded := s.ServerRefreshes[string(session.ReasonSuperseded)]
	s.AddCheck("no request failed outside the attacked session", s.Failures == 0 && s.UnexpectedSessionsEnded == 0 && superseded == 0,
		fmt.Sprintf("%d of %d requests failed; %d sessions ended unexpectedly; %d refresh tokens superseded", s.Failures, s.Requests, s.UnexpectedSessionsEnded, superseded))

	detail := fmt.Sprintf("%d refreshes after a 401, %d requests replayed with the new token", s.RefreshesAfter401, s.Replays)
	if sc.keyErr != nil {
		detail = "rotating the key failed: " + sc.keyErr.Error()
	}
	// A refused request is replayed with a newer token: one its own 401
	// asked for, or one from a refresh already in flight (with 2 s tokens
	// a proactive refresh usually is), so either count shows recovery.
	s.AddCheck("signing key dropped: refused requests were replayed with a new token",
		sc.keyDropped && (s.RefreshesAfter401 > 0 || s.Replays > 0), detail)

	grace := int64(-1)
	if s.GraceReplays != nil {
		grace = *s.GraceReplays
	}
	ps := sc.proxy.Stats()
	sc.dropped = ps.Dropped // all of them, now that nothing is in flight
	s.AddCheck("refresh answers lost: clients retried inside grace and kept their sessions",
		sc.dropped > 0 && grace >= int64(sc.dropped) && s.LostRefreshAnswers >= int64(sc.dropped),
		fmt.Sprintf("%d answers lost after the server rotated; %d grace replays (proxy: %d retries let through while dropping, %d refreshes the server did not answer)",
			sc.dropped, grace, ps.Repeats, ps.Failed))

	ss := shared.Stats()
	_, _, sharedEnded := shared.Ended()
	detail = fmt.Sprintf("%d refreshes, %d adopted from the file by the other process, %d failures", ss.Refreshes, ss.Adoptions, ss.Failures)
	if ss.FirstError != "" {
		detail += fmt.Sprintf(" (the first, sent at %.3fs: %s)", ss.FirstErrorAt.Seconds(), ss.FirstError)
	}
	s.AddCheck("two processes on one token file: no reuse, no failure",
		ss.Failures == 0 && !sharedEnded && ss.Adoptions > 0, detail)

	reuse := int64(-1)
	if s.ReuseDetections != nil {
		reuse = *s.ReuseDetections
	}
	detail = fmt.Sprintf("the attacker got %s; the server counted %d reuse", describeAttack(sc.attackReason, sc.attackErr), reuse)
	if !sc.attacked && sc.attackErr == nil {
		detail = "the attack did not run"
	}
	s.AddCheck("stolen refresh token replayed after grace: reuse detected once",
		sc.attacked && sc.attackErr == nil && sc.attackReason == string(session.ReasonReused) && reuse == 1, detail)

	_, endErr, ended := victim.Ended()
	detail = "the attacked session did not end"
	if ended {
		detail = fmt.Sprintf("it ended with %v; %d sessions ended in all", endErr, s.SessionsEnded)
	}
	s.AddCheck("the attacked session, and only it, ended with ErrReauthRequired",
		ended && errors.Is(endErr, client.ErrReauthRequired) && s.SessionsEnded == 1, detail)
}

// writeTimeline draws the run to path.
func (sc *scenario) writeTimeline(path string, s loadgen.Summary) error {
	title := fmt.Sprintf("silentrefresh demo: %d users × %d workers, access tokens %v, grace %v", s.Users, s.Workers, sc.f.accessTTL, sc.f.grace)
	reuse := "?"
	if s.ReuseDetections != nil {
		reuse = fmt.Sprint(*s.ReuseDetections)
	}
	grace := "?"
	if s.GraceReplays != nil {
		grace = fmt.Sprint(*s.GraceReplays)
	}
	sub := fmt.Sprintf("%d requests, %d failed outside the attacked session · %d refreshes (%d adopted) · %d refresh answers lost, %s grace replays · %s reuse detected · p50 %.1f ms, p99 %.1f ms, longest wait %.0f ms",
		s.Requests, s.Failures, s.Refreshes, s.Adoptions, s.LostRefreshAnswers, grace, reuse, s.LatencyP50MS, s.LatencyP99MS, s.LongestWaitMS)
	tl := sc.gen.Timeline(title, sub, 0)
	if victimUser < len(tl.Rows) && tl.Rows[victimUser].Ended {
		tl.Rows[victimUser].EndNote = "reuse detected: session revoked → ErrReauthRequired"
	}
	return writeSVG(path, tl)
}
