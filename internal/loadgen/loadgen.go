// Package loadgen drives a silentrefresh deployment with simulated users,
// each a Go client.Client with several workers firing requests at once, and
// records what happened: every request, every refresh and every wait on one.
// From the record it makes a live progress view, a summary (a table or one
// JSON object) and an SVG timeline.
//
// A Generator is used in three steps:
//
//	g, err := loadgen.New(loadgen.Config{URLs: urls, Users: creds, Workers: 8, Duration: 30 * time.Second})
//	err = g.Login(ctx)   // one session per user
//	err = g.Run(ctx)     // the load, for Config.Duration
//	s := g.Summary(ctx)  // and g.Timeline(...) for the picture
//
// While Run runs, Fault records injected faults (shaded on the timeline),
// Notef prints a line in the live view, and each User can be told that its
// session is expected to end (an attacked session), so that its failures
// count apart.
package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/silentrefresh/silentrefresh/client"
)

// API is the server API a Generator logs in and refreshes with.
type API string

// The APIs.
const (
	// APIJSON is the JSON API: POST /api/auth/login, /api/auth/refresh.
	APIJSON API = "json"
	// APIOAuth2 is the RFC 6749 token endpoint: POST /oauth2/token.
	APIOAuth2 API = "oauth2"
)

// DefaultPath is the resource the workers request: a session-checked
// endpoint, so that a revoked session is seen at once.
const DefaultPath = "/api/me"

// Credentials are one user's username and password.
type Credentials struct {
	Username string
	Password string
}

// String shows the username only.
func (c Credentials) String() string { return c.Username + ":xxxxx" }

// ReadCredentials reads "username:password" lines. Blank lines and lines
// starting with # are skipped; the password is everything after the first
// colon.
func ReadCredentials(r io.Reader) ([]Credentials, error) {
	var out []Credentials
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		name, pw, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || pw == "" {
			return nil, fmt.Errorf("loadgen: credentials line %d: want username:password", n)
		}
		out = append(out, Credentials{Username: name, Password: pw})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("loadgen: read credentials: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("loadgen: no credentials")
	}
	return out, nil
}

// Config configures a Generator. URLs, Users and Duration are required.
type Config struct {
	// URLs are the base URLs of the deployment's replicas, e.g.
	// http://127.0.0.1:8080. Requests, logins and refreshes are spread
	// over them in turn, as a load balancer without affinity would; they
	// must serve the API under the same path.
	URLs []string
	// AuthURL, when set, is where logins and refreshes go instead (a
	// fault-injecting proxy, say); they are then not spread.
	AuthURL string
	// API is the API to log in and refresh with; empty means APIJSON.
	API API
	// ClientID is sent with OAuth2 requests; empty means "silentrefresh-load".
	ClientID string
	// Path is the resource each worker requests with GET; empty means
	// DefaultPath.
	Path string
	// Users are the users to log in, one session each.
	Users []Credentials
	// Workers is how many goroutines send requests for each user at once;
	// zero means 1.
	Workers int
	// Duration is how long Run sends requests.
	Duration time.Duration
	// Think is the mean pause of a worker after each answer (uniform in
	// [Think/2, 3*Think/2]); zero means none.
	Think time.Duration
	// RequestTimeout bounds one request, waits on a refresh included; zero
	// means 30s.
	RequestTimeout time.Duration
	// Processes says how many Clients ("processes") user i has; nil means
	// one each. Clients of one user share one client.FileStore file in
	// TokenDir, as two processes of one program would.
	Processes func(user int) int
	// TokenDir is the folder of the token files of users with more than
	// one process.
	TokenDir string
	// LoginConcurrency bounds the logins in flight; zero means 8.
	LoginConcurrency int
	// Transport sends the workers' requests; nil means a new one sized
	// for the load.
	Transport http.RoundTripper
	// Client, when set, adjusts the client.Config of each Client before it
	// is created (Hooks and OnTokenChange are the Generator's: wrap them,
	// don't replace them).
	Client func(user, process int, cfg *client.Config)
}

// Generator drives the load. Create one with New.
type Generator struct {
	cfg       Config
	urls      []*url.URL
	next      atomic.Uint64 // round-robin position in urls
	transport http.RoundTripper
	authBase  string
	authRT    http.RoundTripper // where logins and refreshes are sent
	users     []*User

	// start is set by Run before any worker starts; workers and hooks read
	// it directly, other goroutines through started.
	start    time.Time
	started  atomic.Pointer[time.Time]
	ended    atomic.Pointer[time.Time] // when Run returned
	running  atomic.Bool
	loggedIn bool

	phase    atomic.Pointer[string]
	progress atomic.Pointer[Progress]

	mu        sync.Mutex // guards faults, errors and before
	faults    []faultRec
	errors    map[string]*ErrorCount
	before    map[string]map[string]float64 // each replica's refresh counters when Run started
	beforeErr error

	// flightMu guards sent and reported, the refresh requests sent since
	// the start and those a finished refresh has reported; flightCond
	// signals a report.
	flightMu   sync.Mutex
	flightCond *sync.Cond
	sent       int64
	reported   int64

	requests, failures, expected          atomic.Int64
	refreshes, adoptions, refreshFailures atomic.Int64
	reauths, attempts, lost, replays      atomic.Int64
	waits, waiting, failovers             atomic.Int64
	reactive                              atomic.Int64 // refreshes triggered by a 401
	maxWait                               atomic.Int64 // ns
}

// faultRec is one injected fault as recorded.
type faultRec struct {
	name       string
	start, end time.Time
}

// New checks cfg and returns a Generator. It sends nothing.
func New(cfg Config) (*Generator, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("loadgen: Config.URLs is empty")
	}
	if len(cfg.Users) == 0 {
		return nil, errors.New("loadgen: Config.Users is empty")
	}
	if cfg.Duration <= 0 {
		return nil, errors.New("loadgen: Config.Duration must be positive")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.API == "" {
		cfg.API = APIJSON
	}
	if cfg.API != APIJSON && cfg.API != APIOAuth2 {
		return nil, fmt.Errorf("loadgen: unknown API %q (json or oauth2)", cfg.API)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "silentrefresh-load"
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if !strings.HasPrefix(cfg.Path, "/") {
		cfg.Path = "/" + cfg.Path
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.LoginConcurrency <= 0 {
		cfg.LoginConcurrency = 8
	}
	g := &Generator{cfg: cfg, errors: make(map[string]*ErrorCount)}
	g.flightCond = sync.NewCond(&g.flightMu)
	for _, raw := range cfg.URLs {
		u, err := parseBase(raw)
		if err != nil {
			return nil, err
		}
		g.urls = append(g.urls, u)
	}
	g.transport = cfg.Transport
	if g.transport == nil {
		g.transport = NewTransport(len(cfg.Users) * cfg.Workers)
	}
	if cfg.AuthURL != "" {
		u, err := parseBase(cfg.AuthURL)
		if err != nil {
			return nil, err
		}
		g.authBase = u.String()
		g.authRT = g.transport
	} else {
		g.authBase = g.urls[0].String()
		g.authRT = &spread{g: g, next: g.transport}
	}
	for i, c := range cfg.Users {
		procs := 1
		if cfg.Processes != nil {
			procs = max(cfg.Processes(i), 1)
		}
		if procs > 1 && cfg.TokenDir == "" {
			return nil, fmt.Errorf("loadgen: user %d has %d processes but Config.TokenDir is empty", i, procs)
		}
		g.users = append(g.users, newUser(g, i, c, procs))
	}
	empty := ""
	g.phase.Store(&empty)
	return g, nil
}

func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("loadgen: %q is not an http(s) base URL", raw)
	}
	return u, nil
}

// NewTransport returns a transport for conns concurrent requests to a few
// hosts: keep-alive connections for all of them, short dial timeouts.
func NewTransport(conns int) *http.Transport {
	conns = max(conns, 16)
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          conns * 2,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ForceAttemptHTTP2:     false,
	}
}

// pickIndex returns the index of the next replica in turn.
func (g *Generator) pickIndex() int {
	return int((g.next.Add(1) - 1) % uint64(len(g.urls)))
}

// Users returns the simulated users, in the order of Config.Users.
func (g *Generator) Users() []*User { return g.users }

// User returns user i.
func (g *Generator) User(i int) *User { return g.users[i] }

// Login logs every user in (at most Config.LoginConcurrency at once) and
// creates their Clients. It fails if any login fails.
func (g *Generator) Login(ctx context.Context) error {
	if g.loggedIn {
		return errors.New("loadgen: already logged in")
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(g.cfg.LoginConcurrency)
	for _, u := range g.users {
		eg.Go(func() error { return u.login(ctx) })
	}
	if err := eg.Wait(); err != nil {
		g.Close()
		return err
	}
	g.loggedIn = true
	return nil
}

// Run sends requests from every worker of every user for Config.Duration,
// or until ctx is done, and returns when the last answer is in. A
// user's workers stop when its session ends. Run fails only if the load
// could not run at all; failed requests are counted, not returned.
func (g *Generator) Run(ctx context.Context) error {
	if !g.loggedIn {
		return errors.New("loadgen: Run before Login")
	}
	before, err := g.scrapeEach(ctx)
	g.mu.Lock()
	g.before, g.beforeErr = before, err
	g.mu.Unlock()

	// Every worker exists before the start is published: WaitInFlight
	// reads them once it sees the start.
	type job struct {
		u  *User
		c  *client.Client
		wk *worker
	}
	var jobs []job
	for _, u := range g.users {
		// Every process works, even with fewer workers than processes.
		for w := range max(g.cfg.Workers, len(u.clients)) {
			wk := &worker{}
			u.workers = append(u.workers, wk)
			jobs = append(jobs, job{u, u.clients[w%len(u.clients)], wk})
		}
	}
	g.start = time.Now()
	start := g.start
	g.started.Store(&start)
	deadline := g.start.Add(g.cfg.Duration)
	g.running.Store(true)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() { g.work(ctx, j.u, j.c, j.wk, deadline) })
	}
	wg.Wait()
	g.running.Store(false)
	end := time.Now()
	g.ended.Store(&end)
	g.settle(ctx)
	return nil
}

// settle waits until every refresh request sent has been reported by its
// Client (a background refresh may still be in flight when the workers
// stop), so that the counters match the servers'. It gives up after
// RequestTimeout or when ctx is done.
func (g *Generator) settle(ctx context.Context) {
	stop := context.AfterFunc(ctx, g.flightCond.Broadcast)
	defer stop()
	t := time.AfterFunc(g.cfg.RequestTimeout, func() {
		g.flightMu.Lock()
		g.reported = max(g.reported, g.sent) // stop waiting
		g.flightMu.Unlock()
		g.flightCond.Broadcast()
	})
	defer t.Stop()
	g.flightMu.Lock()
	defer g.flightMu.Unlock()
	for g.reported < g.sent && ctx.Err() == nil {
		g.flightCond.Wait()
	}
}

// WaitInFlight waits until every request that is in flight now, a worker's
// or a refresh, has ended and its Client has taken in its result, or until
// timeout or ctx ends. After it, no request sent before the call is still
// on its way. It reports whether they all ended.
func (g *Generator) WaitInFlight(ctx context.Context, timeout time.Duration) bool {
	type pending struct {
		w   *worker
		seq uint64
	}
	type flight struct {
		u    *User
		sent int64
	}
	var busy []pending
	var flights []flight
	if g.Started().IsZero() {
		return true // no worker yet
	}
	g.flightMu.Lock()
	for _, u := range g.users {
		for _, w := range u.workers {
			if seq := w.busy.Load(); seq != 0 {
				busy = append(busy, pending{w, seq})
			}
		}
		if u.refreshReported < u.refreshSent {
			flights = append(flights, flight{u, u.refreshSent})
		}
	}
	g.flightMu.Unlock()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		for len(busy) > 0 && busy[0].w.busy.Load() != busy[0].seq {
			busy = busy[1:]
		}
		// A user's refreshes run one at a time: once as many requests are
		// reported as had been sent, the refresh then in flight is over and
		// its tokens are in place.
		g.flightMu.Lock()
		for len(flights) > 0 && flights[0].u.refreshReported >= flights[0].sent {
			flights = flights[1:]
		}
		g.flightMu.Unlock()
		if len(busy) == 0 && len(flights) == 0 {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// Started returns when Run started sending requests (the zero time
// before).
func (g *Generator) Started() time.Time {
	if t := g.started.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// finished returns when Run returned (the zero time before).
func (g *Generator) finished() time.Time {
	if t := g.ended.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// worker is one goroutine's record. Only its goroutine writes samples,
// until Run returns.
type worker struct {
	samples []sample
	// busy is a sequence number of the request in flight, zero when idle;
	// WaitInFlight reads it.
	busy atomic.Uint64
}

// reqSeq numbers requests for worker.busy.
var reqSeq atomic.Uint64

// sample is one request.
type sample struct {
	at    time.Duration // when it was sent, since the start
	dur   time.Duration
	flags uint8
}

const (
	flagFailed   uint8 = 1 << iota // the request failed
	flagExpected                   // ... in a session expected to end
)

// work is one worker's loop.
func (g *Generator) work(ctx context.Context, u *User, c *client.Client, wk *worker, deadline time.Time) {
	hc := c.HTTPClient()
	for {
		if ctx.Err() != nil || u.isEnded() || !time.Now().Before(deadline) {
			return
		}
		start := time.Now()
		wk.busy.Store(reqSeq.Add(1))
		err := g.request(ctx, hc)
		wk.busy.Store(0)
		dur := time.Since(start)
		if ctx.Err() != nil {
			return // interrupted: neither success nor failure
		}
		s := sample{at: start.Sub(g.start), dur: dur}
		g.requests.Add(1)
		u.requests.Add(1)
		if err != nil {
			s.flags |= flagFailed
			if u.expectEnd.Load() {
				s.flags |= flagExpected
				g.expected.Add(1)
				u.expected.Add(1)
			} else {
				g.failures.Add(1)
				u.failures.Add(1)
				g.countError(err, u, start)
			}
		}
		wk.samples = append(wk.samples, s)
		if errors.Is(err, client.ErrReauthRequired) {
			u.markEnded(err)
			return
		}
		if g.cfg.Think > 0 {
			d := g.cfg.Think/2 + rand.N(g.cfg.Think+1)
			t := time.NewTimer(min(d, max(time.Until(deadline), 0)))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			case <-u.ended:
				t.Stop()
				return
			}
		}
	}
}

// request sends one GET and reads its answer. With several replicas, a
// request that could not reach one (a transport error, 502 or 503) is sent
// once more to the next, as a load balancer would.
func (g *Generator) request(ctx context.Context, hc *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.RequestTimeout)
	defer cancel()
	tries := 1
	if len(g.urls) > 1 {
		tries = 2
	}
	var err error
	i := g.pickIndex()
	for try := range tries {
		if try > 0 {
			g.failovers.Add(1)
		}
		var retry bool
		retry, err = g.get(ctx, hc, g.urls[(i+try)%len(g.urls)].String()+g.cfg.Path)
		if err == nil || !retry || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// get sends one GET and reports whether another replica may do better.
func (g *Generator) get(ctx context.Context, hc *http.Client, u string) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, fmt.Errorf("loadgen: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is the same for every request: leave it out
		}
		return !errors.Is(err, client.ErrReauthRequired), err
	}
	_, copyErr := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusOK:
		return resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable,
			fmt.Errorf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	case copyErr != nil:
		return true, fmt.Errorf("reading the answer: %w", copyErr)
	}
	return false, nil
}

// countError counts a failure of a request u sent at sent, by its
// message, for the summary, and keeps the user's first one.
func (g *Generator) countError(err error, u *User, sent time.Time) {
	msg := err.Error()
	if len(msg) > 160 {
		msg = msg[:160] + "..."
	}
	u.mu.Lock()
	if u.firstErr == "" {
		u.firstErr, u.firstErrAt = msg, g.since(sent)
	}
	u.mu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.errors[msg]
	if !ok && len(g.errors) >= 100 {
		msg = "(other errors)"
		e, ok = g.errors[msg]
	}
	if !ok {
		e = &ErrorCount{Error: msg, FirstAt: round(g.since(sent).Seconds(), 3), FirstUser: u.Username}
		g.errors[msg] = e
	}
	e.Count++
}

// since is t as an offset from the start of Run.
func (g *Generator) since(t time.Time) time.Duration {
	start := g.Started()
	if start.IsZero() {
		return 0
	}
	return t.Sub(start)
}

// Fault records a fault injected from start to end (end == start for an
// instant one, like a dropped signing key). The timeline shades it.
func (g *Generator) Fault(name string, start, end time.Time) {
	if end.Before(start) {
		end = start
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.faults = append(g.faults, faultRec{name: name, start: start, end: end})
}

// SetPhase sets the text the live view shows after its counters, e.g.
// "dropping refresh answers"; "" shows none.
func (g *Generator) SetPhase(s string) { g.phase.Store(&s) }

// Notef prints a line in the live view (above its status line on a
// terminal), prefixed with the time since the start. Without a live view
// it does nothing.
func (g *Generator) Notef(format string, args ...any) {
	if p := g.progress.Load(); p != nil {
		p.note(g.since(time.Now()), fmt.Sprintf(format, args...))
	}
}

// Logout ends every session that is still open, at most
// Config.LoginConcurrency at once, so that a deployment does not keep
// them. Errors are joined.
func (g *Generator) Logout(ctx context.Context) error {
	var (
		mu   sync.Mutex
		errs []error
	)
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(g.cfg.LoginConcurrency)
	for _, u := range g.users {
		if u.isEnded() || len(u.clients) == 0 {
			continue
		}
		eg.Go(func() error {
			if err := u.clients[0].Logout(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("loadgen: logout %s: %w", u.Username, err))
				mu.Unlock()
			}
			return nil
		})
	}
	_ = eg.Wait()
	return errors.Join(errs...)
}

// Close stops every Client.
func (g *Generator) Close() {
	for _, u := range g.users {
		for _, c := range u.clients {
			c.Close()
		}
	}
}

// spread sends each request to the next replica in turn.
type spread struct {
	g    *Generator
	next http.RoundTripper
}

// RoundTrip sends req to the next replica, or to the ones after it while
// they cannot be connected to (the request was then not sent, so sending
// it elsewhere is safe).
func (s *spread) RoundTrip(req *http.Request) (*http.Response, error) {
	urls := s.g.urls
	i := s.g.pickIndex()
	for try := 0; ; try++ {
		u := urls[(i+try)%len(urls)]
		r2 := req.Clone(req.Context())
		r2.URL.Scheme, r2.URL.Host, r2.Host = u.Scheme, u.Host, ""
		if try > 0 && req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, fmt.Errorf("loadgen: cannot resend the request to another replica: no GetBody")
			}
			body, err := req.GetBody()
			if err != nil {
				return nil, fmt.Errorf("loadgen: resend the request to another replica: %w", err)
			}
			r2.Body = body
		}
		resp, err := s.next.RoundTrip(r2)
		var op *net.OpError
		if err == nil || try+1 >= len(urls) || !errors.As(err, &op) || op.Op != "dial" || req.Context().Err() != nil {
			return resp, err
		}
		s.g.failovers.Add(1)
	}
}

// tokenFile is the token file of user i's processes.
func tokenFile(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("user-%03d.tokens.json", i))
}
