package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/silentrefresh/silentrefresh/bearer"
	"github.com/silentrefresh/silentrefresh/internal/clock"
	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/store"
	storedsn "github.com/silentrefresh/silentrefresh/store/dsn"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/user"
)

// backend is one store under test.
type backend struct {
	name  string
	store store.Store
	close func()
	cpu   cpuMeter
}

// openBackend opens a new, empty store. It returns nil for postgres
// without a DSN.
func openBackend(ctx context.Context, name, pgDSN string) (*backend, error) {
	switch name {
	case "sqlite":
		dir, err := os.MkdirTemp("", "silentrefresh-bench-")
		if err != nil {
			return nil, err
		}
		st, err := sqlite.Open(ctx, filepath.Join(dir, "bench.db"))
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		return &backend{name: name, store: st, close: func() { st.Close(); os.RemoveAll(dir) }}, nil
	case "postgres":
		if pgDSN == "" {
			return nil, nil
		}
		schema := "bench_" + randomHex(6)
		if err := execPG(ctx, pgDSN, "CREATE SCHEMA "+schema); err != nil {
			return nil, err
		}
		drop := func() { _ = execPG(context.WithoutCancel(ctx), pgDSN, "DROP SCHEMA "+schema+" CASCADE") }
		dsn, err := withSearchPath(pgDSN, schema)
		if err != nil {
			drop()
			return nil, err
		}
		st, err := storedsn.Open(ctx, dsn)
		if err != nil {
			drop()
			return nil, err
		}
		return &backend{name: name, store: st, close: func() { st.Close(); drop() },
			cpu: cpuMeter{postmaster: localPostmaster(ctx, pgDSN)}}, nil
	}
	return nil, fmt.Errorf("unknown backend %q (sqlite, postgres)", name)
}

func execPG(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("postgres: %s: %w", sql, err)
	}
	return nil
}

func withSearchPath(dsn, schema string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return dsn + " search_path=" + schema, nil
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

const (
	benchUser     = "bench"
	benchPassword = "bench password, long enough"
)

// measureBackend serves the API over loopback on b's store and measures
// each row.
func measureBackend(ctx context.Context, b *backend, o options, log io.Writer) ([]result, error) {
	hash, err := user.HashPassword(benchPassword)
	if err != nil {
		return nil, err
	}
	if err := b.store.CreateUser(ctx, user.User{ID: "bench-user", Username: benchUser, PasswordHash: hash, CreatedAt: time.Now().UTC()}); err != nil {
		return nil, err
	}
	setup, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	srv, err := server.New(setup, server.Config{Store: b.store, Issuer: "http://bench.test", AccessTTL: time.Hour})
	if err != nil {
		return nil, err
	}
	// The same bearer check without the per-request session lookup, to
	// measure what the lookup costs.
	mux := http.NewServeMux()
	mux.Handle("/nocheck/heartbeat", bearer.Require(srv.Verifier())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := bearer.ClaimsFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "sub": c.Subject, "sid": c.SessionID})
	})))
	mux.Handle("/", srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	base := "http://" + ln.Addr().String()

	var out []result
	for _, n := range o.sessions {
		fmt.Fprintf(log, "%s: %d sessions refreshing for %v ...\n", b.name, n, o.duration)
		r, err := measureRefresh(ctx, base, n, o, b.cpu)
		if err != nil {
			return nil, err
		}
		r.Backend = b.name
		out = append(out, r)
	}
	if !o.heartbeat {
		return out, nil
	}
	n := slices.Max(o.sessions)
	sess, err := loginAll(ctx, newClient(n), base, n)
	if err != nil {
		return nil, err
	}
	for _, hb := range []struct{ what, path string }{
		{"heartbeat", "/api/heartbeat"},
		{"heartbeat-no-check", "/nocheck/heartbeat"},
	} {
		fmt.Fprintf(log, "%s: %d sessions on %s for %v ...\n", b.name, n, hb.path, o.duration)
		r := measureLoop(ctx, newClient(n), sess, o, b.cpu, func(ctx context.Context, hc *http.Client, s *benchSession) error {
			return call(ctx, hc, http.MethodGet, base+hb.path, s.access, nil, nil)
		})
		r.Backend, r.What = b.name, hb.what
		out = append(out, r)
	}
	// The lookup alone, straight on the store.
	r := measureLoop(ctx, nil, sess, o, b.cpu, func(ctx context.Context, _ *http.Client, s *benchSession) error {
		_, err := b.store.Family(ctx, s.sid)
		return err
	})
	r.Backend, r.What = b.name, "family-lookup"
	out = append(out, r)
	return out, nil
}

// measureRefresh logs n sessions in and has each refresh in a loop.
func measureRefresh(ctx context.Context, base string, n int, o options, cpu cpuMeter) (result, error) {
	hc := newClient(n)
	sess, err := loginAll(ctx, hc, base, n)
	if err != nil {
		return result{}, err
	}
	r := measureLoop(ctx, hc, sess, o, cpu, func(ctx context.Context, hc *http.Client, s *benchSession) error {
		var g grant
		if err := call(ctx, hc, http.MethodPost, base+"/api/auth/refresh", "", map[string]string{"refreshToken": s.refresh}, &g); err != nil {
			return err
		}
		s.refresh, s.access = g.RefreshToken, g.AccessToken
		return nil
	})
	r.What = "refresh"
	return r, nil
}

type benchSession struct {
	access, refresh, sid string
}

type grant struct {
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
}

// loginAll logs n sessions in, four at a time (argon2id is memory-hungry).
func loginAll(ctx context.Context, hc *http.Client, base string, n int) ([]*benchSession, error) {
	sess := make([]*benchSession, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var g grant
			for attempt := 1; ; attempt++ {
				errs[i] = call(ctx, hc, http.MethodPost, base+"/api/auth/login", "",
					map[string]string{"username": benchUser, "password": benchPassword}, &g)
				// The server hashes a bounded number of passwords at once
				// and answers the rest 503: honour it, as clients do.
				var se *statusError
				if !errors.As(errs[i], &se) || se.status != http.StatusServiceUnavailable || attempt == 20 ||
					clock.Sleep(ctx, 200*time.Millisecond) != nil {
					break
				}
			}
			sess[i] = &benchSession{access: g.AccessToken, refresh: g.RefreshToken, sid: sidOf(g.AccessToken)}
		})
	}
	wg.Wait()
	return sess, errors.Join(errs...)
}

// measureLoop runs op in a loop per session: first for the warm-up, then
// for the measured duration, and returns throughput and latencies.
func measureLoop(ctx context.Context, hc *http.Client, sess []*benchSession, o options, cpu cpuMeter, op func(context.Context, *http.Client, *benchSession) error) result {
	var (
		measuring atomic.Bool
		errCount  atomic.Int64
		wg        sync.WaitGroup
		lat       = make([][]time.Duration, len(sess))
	)
	stop := make(chan struct{})
	for i, s := range sess {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				err := op(ctx, hc, s)
				d := time.Since(start)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errCount.Add(1)
					if ctx.Err() != nil {
						return
					}
					continue
				}
				lat[i] = append(lat[i], d)
			}
		})
	}
	_ = clock.Sleep(ctx, o.warmup)
	measuring.Store(true)
	start, cpu0 := time.Now(), cpu.sample()
	_ = clock.Sleep(ctx, o.duration)
	measuring.Store(false)
	elapsed, used := time.Since(start), cpu.sample()-cpu0
	close(stop)
	wg.Wait()

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := result{Sessions: len(sess), Ops: int64(len(all)), Errors: errCount.Load(), Seconds: elapsed.Seconds()}
	r.PerSec = float64(r.Ops) / elapsed.Seconds()
	r.P50, r.P99 = ms(percentile(all, 0.50)), ms(percentile(all, 0.99))
	if r.Ops > 0 && used > 0 {
		r.CPUPerOp = float64(used.Microseconds()) / float64(r.Ops)
		r.CPUBound = float64(runtime.NumCPU()) * 1e6 / r.CPUPerOp
	}
	return r
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        conns * 2,
			MaxIdleConnsPerHost: conns * 2,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// call sends a JSON request and decodes a 2xx answer into out.
func call(ctx context.Context, hc *http.Client, method, u, bearer string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &statusError{method: method, url: u, status: resp.StatusCode, body: b}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// sidOf reads the "sid" claim of an access token, unverified.
func sidOf(access string) string {
	parts := strings.Split(access, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		SID string `json:"sid"`
	}
	_ = json.Unmarshal(payload, &c)
	return c.SID
}

// statusError is a non-2xx answer.
type statusError struct {
	method, url string
	status      int
	body        []byte
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.method, e.url, e.status, e.body)
}
