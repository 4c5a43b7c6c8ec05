package loadgen

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/internal/clock"
)

// User is one simulated user: one session, one Client per process, and
// the record of its refreshes and waits.
type User struct {
	// Index is the user's position in Config.Users.
	Index int
	// Username is the name it logs in with.
	Username string

	g       *Generator
	cred    Credentials
	procs   int
	clients []*client.Client
	workers []*worker // written by Run before its workers start

	expectEnd atomic.Bool
	ended     chan struct{} // closed when the session ended
	endOnce   sync.Once

	loginRT string // the login's refresh token, for an attacker to replay

	requests, failures, expected, refreshes, adoptions atomic.Int64
	// refreshSent and refreshReported count the user's refresh requests
	// sent and reported by its finished refreshes (guarded by g.flightMu).
	refreshSent, refreshReported int64

	mu         sync.Mutex // guards the fields below
	note       string
	current    [32]byte               // SHA-256 of the refresh token in use
	rotated    map[[32]byte]time.Time // when each earlier refresh token was replaced
	endedAt    time.Time
	endErr     error
	refreshLog []TimelineRefresh
	waitLog    []Span
	lostLog    []time.Duration
	firstErr   string        // the first failed request's error, outside an expected end
	firstErrAt time.Duration // when that request was sent, since the start
}

func newUser(g *Generator, i int, c Credentials, procs int) *User {
	return &User{
		Index:    i,
		Username: c.Username,
		g:        g,
		cred:     c,
		procs:    procs,
		ended:    make(chan struct{}),
		rotated:  make(map[[32]byte]time.Time),
	}
}

// UserStats are one user's counters.
type UserStats struct {
	Requests         int64
	Failures         int64 // failed requests while the session was not expected to end
	ExpectedFailures int64 // failed requests after ExpectEnd
	Refreshes        int64 // refreshes that got new tokens from the server
	Adoptions        int64 // refreshes that took tokens another process had saved
	// FirstError is the error of the user's first failed request counted
	// in Failures, "" when none failed; FirstErrorAt is when that request
	// was sent, since the start.
	FirstError   string
	FirstErrorAt time.Duration
}

// Stats returns the user's counters.
func (u *User) Stats() UserStats {
	u.mu.Lock()
	firstErr, firstErrAt := u.firstErr, u.firstErrAt
	u.mu.Unlock()
	return UserStats{
		FirstError:       firstErr,
		FirstErrorAt:     firstErrAt,
		Requests:         u.requests.Load(),
		Failures:         u.failures.Load(),
		ExpectedFailures: u.expected.Load(),
		Refreshes:        u.refreshes.Load(),
		Adoptions:        u.adoptions.Load(),
	}
}

// Clients returns the user's Clients, one per process.
func (u *User) Clients() []*client.Client { return u.clients }

// SetNote sets a few words shown beside the user on the timeline, e.g.
// "attacked".
func (u *User) SetNote(s string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.note = s
}

// ExpectEnd says the session may end from now on (it is being attacked):
// its failed requests count as expected, not as failures.
func (u *User) ExpectEnd() { u.expectEnd.Store(true) }

// Ended reports whether the session ended (a request got
// client.ErrReauthRequired), when, and the error.
func (u *User) Ended() (at time.Time, err error, ended bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.endedAt, u.endErr, !u.endedAt.IsZero()
}

func (u *User) isEnded() bool {
	select {
	case <-u.ended:
		return true
	default:
		return false
	}
}

func (u *User) markEnded(err error) {
	u.endOnce.Do(func() {
		u.mu.Lock()
		u.endedAt, u.endErr = time.Now(), err
		u.mu.Unlock()
		close(u.ended)
		if u.expectEnd.Load() {
			u.g.Notef("session of %s ended as expected: %v", u.Username, err)
		} else {
			u.g.Notef("session of %s ended UNEXPECTEDLY: %v", u.Username, err)
		}
	})
}

// LoginRefreshToken returns the refresh token the login answered: what an
// attacker who copied it then would hold. It is rotated at the first
// refresh; see RotatedAt.
func (u *User) LoginRefreshToken() string { return u.loginRT }

// RotatedAt reports when the user's Clients replaced refreshToken with its
// successor: the server consumed it no later than that.
func (u *User) RotatedAt(refreshToken string) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	t, ok := u.rotated[sha256.Sum256([]byte(refreshToken))]
	return t, ok
}

// tokenChanged follows the chain of refresh tokens, by hash only.
func (u *User) tokenChanged(t client.Tokens) {
	if t.RefreshToken == "" {
		return
	}
	h := sha256.Sum256([]byte(t.RefreshToken))
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if h == u.current {
		return
	}
	if u.current != ([32]byte{}) {
		if _, ok := u.rotated[u.current]; !ok {
			u.rotated[u.current] = now
		}
	}
	u.current = h
}

// login opens the user's session and creates its Clients.
func (u *User) login(ctx context.Context) error {
	g := u.g
	hc := &http.Client{Transport: &tracer{u: u, next: g.authRT}}
	var (
		refresher client.Refresher
		tok       client.Tokens
		err       error
	)
	var login func(ctx context.Context, username, password string) (client.Tokens, error)
	switch g.cfg.API {
	case APIOAuth2:
		r := client.OAuth2(g.authBase+"/oauth2/token", g.cfg.ClientID,
			client.WithHTTPClient(hc), client.WithRevocationURL(g.authBase+"/oauth2/revoke"))
		refresher, login = r, r.Login
	default:
		r := client.JSONAPI(g.authBase, client.WithHTTPClient(hc))
		refresher, login = r, r.Login
	}
	// A replica that is down or overloaded is skipped: the next attempt
	// goes to the next one.
	for attempt := 1; ; attempt++ {
		tok, err = login(ctx, u.cred.Username, u.cred.Password)
		var (
			ne *client.NetworkError
			re *client.RetrieveError
		)
		temporary := errors.As(err, &ne) || (errors.As(err, &re) && re.Temporary() && re.StatusCode != http.StatusTooManyRequests)
		if err == nil || !temporary || attempt >= max(3, len(g.urls)+1) {
			break
		}
		if err := clock.Sleep(ctx, time.Duration(attempt)*100*time.Millisecond); err != nil {
			return fmt.Errorf("loadgen: log in %s: %w", u.Username, err)
		}
	}
	if err != nil {
		return fmt.Errorf("loadgen: log in %s: %w", u.Username, err)
	}
	u.loginRT = tok.RefreshToken
	u.tokenChanged(tok)

	stores := make([]client.Store, u.procs)
	if u.procs == 1 {
		stores[0] = client.NewMemoryStore(tok)
	} else {
		path := tokenFile(g.cfg.TokenDir, u.Index)
		if err := client.NewFileStore(path).Save(ctx, tok); err != nil {
			return fmt.Errorf("loadgen: %s: save tokens: %w", u.Username, err)
		}
		for p := range stores {
			stores[p] = client.NewFileStore(path)
		}
	}
	for p, st := range stores {
		cfg := client.Config{
			Refresher:     refresher,
			Store:         st,
			Base:          g.transport,
			OnTokenChange: u.tokenChanged,
			Hooks: client.Hooks{
				Refresh:   u.onRefresh,
				WaitStart: func() { g.waiting.Add(1) },
				WaitEnd:   u.onWaitEnd,
				Replay:    func() { g.replays.Add(1) },
			},
		}
		if g.cfg.Client != nil {
			g.cfg.Client(u.Index, p, &cfg)
		}
		c, err := client.New(cfg)
		if err != nil {
			return fmt.Errorf("loadgen: %s: %w", u.Username, err)
		}
		u.clients = append(u.clients, c)
	}
	return nil
}

// RefreshKind is how a refresh is drawn on the timeline.
type RefreshKind string

// The kinds of refresh.
const (
	RefreshProactive RefreshKind = "proactive" // before expiry, in the background
	RefreshReactive  RefreshKind = "reactive"  // after a 401, or with the token expired
	RefreshAdopted   RefreshKind = "adopted"   // another process had refreshed: its tokens were taken
	RefreshFailed    RefreshKind = "failed"    // failed, session kept
	RefreshEnded     RefreshKind = "ended"     // the server refused the token: the session ended
)

func (u *User) onRefresh(ev client.RefreshEvent) {
	g := u.g
	end := g.since(time.Now())
	kind := RefreshProactive
	if ev.Trigger == client.TriggerRejected || ev.Trigger == client.TriggerExpired {
		kind = RefreshReactive
	}
	g.attempts.Add(int64(ev.Attempts))
	g.flightMu.Lock()
	g.reported += int64(ev.Attempts)
	u.refreshReported += int64(ev.Attempts)
	g.flightMu.Unlock()
	g.flightCond.Broadcast()
	switch ev.Outcome {
	case client.OutcomeRefreshed:
		g.refreshes.Add(1)
		u.refreshes.Add(1)
		if ev.Trigger == client.TriggerRejected {
			g.reactive.Add(1)
		}
	case client.OutcomeAdopted:
		g.adoptions.Add(1)
		u.adoptions.Add(1)
		kind = RefreshAdopted
	case client.OutcomeReauthRequired:
		g.reauths.Add(1)
		kind = RefreshEnded
	default:
		g.refreshFailures.Add(1)
		kind = RefreshFailed
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.refreshLog = append(u.refreshLog, TimelineRefresh{Span: Span{Start: end - ev.Duration, End: end}, Kind: kind})
}

func (u *User) onWaitEnd(waited time.Duration, _ error) {
	g := u.g
	g.waiting.Add(-1)
	g.waits.Add(1)
	for {
		m := g.maxWait.Load()
		if int64(waited) <= m || g.maxWait.CompareAndSwap(m, int64(waited)) {
			break
		}
	}
	end := g.since(time.Now())
	u.mu.Lock()
	defer u.mu.Unlock()
	u.waitLog = append(u.waitLog, Span{Start: end - waited, End: end})
}

// tracer watches a user's refresh requests, to mark the ones that got no
// answer.
type tracer struct {
	u    *User
	next http.RoundTripper
}

// RoundTrip sends req, counting refresh requests for WaitInFlight and
// settle, and marking those that got no answer.
func (t *tracer) RoundTrip(req *http.Request) (*http.Response, error) {
	g := t.u.g
	counted := !g.Started().IsZero() && isRefreshPath(req.URL.Path)
	if counted {
		g.flightMu.Lock()
		g.sent++
		t.u.refreshSent++
		g.flightMu.Unlock()
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil && counted {
		g.lost.Add(1)
		at := g.since(time.Now())
		t.u.mu.Lock()
		t.u.lostLog = append(t.u.lostLog, at)
		t.u.mu.Unlock()
	}
	return resp, err
}

func isRefreshPath(p string) bool {
	return strings.HasSuffix(p, "/api/auth/refresh") || strings.HasSuffix(p, "/oauth2/token")
}
