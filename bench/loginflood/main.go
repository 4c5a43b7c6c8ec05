// Command loginflood floods "silentrefresh serve", run as a real process on
// a fresh SQLite file, with concurrent password logins, and reports what
// the server held up to:
//
//	go run ./bench/loginflood                    # 300 and 1,000 logins, both modes
//	go run ./bench/loginflood -n 300 -mode once
//
// For every count n, n users are created (argon2id with the default
// parameters, as "user add" hashes), a server is started, and n clients
// send their login at the same instant, each from its own client address
// (the harness is the server's --trusted-proxy and names the client in
// X-Forwarded-For, as a reverse proxy in front of it would). In mode
// "once" every client sends one login; in mode "honour" a client answered
// 503 or 429 waits the Retry-After it was given and tries again, until it
// is logged in. Meanwhile /healthz is probed every 10 ms over a connection
// of its own.
//
// The table gives the answers by status, the largest Retry-After, the
// latency of the logins and of /healthz, the server's peak resident memory
// (VmHWM of /proc/PID/status) and the wall time of the flood, beside the
// ideal time: n hashes spread over every core, at the hash time measured
// in this process before the run.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/silentrefresh/silentrefresh/store/dsn"
	"github.com/silentrefresh/silentrefresh/user"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loginflood:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	counts   []int
	modes    []string
	bin      string
	password string
	timeout  time.Duration
	json     bool
	hashes   []int
}

// The modes of a flood.
const (
	modeOnce   = "once"   // one login per client
	modeHonour = "honour" // clients retry after Retry-After until logged in
	modeIdle   = "idle"   // no logins: /healthz alone, for 2 s
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("loginflood", flag.ContinueOnError)
	fs.SetOutput(stderr)
	counts := fs.String("n", "300,1000", "concurrent logins, comma-separated: one flood each")
	modes := fs.String("mode", modeOnce+","+modeHonour, "once (one login per client), honour (retry after Retry-After until logged in), or both")
	fs.StringVar(&o.bin, "bin", "", "silentrefresh binary (default: built from this module)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up on a flood after this long")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON")
	hashes := fs.String("password-hashes", "0", "the server's --password-hashes, comma-separated: one set of floods each (0: its default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, s := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-n: %q is not a positive count", s)
		}
		o.counts = append(o.counts, n)
	}
	for _, m := range strings.Split(*modes, ",") {
		if m = strings.TrimSpace(m); m != modeOnce && m != modeHonour {
			return fmt.Errorf("-mode: %q is neither %s nor %s", m, modeOnce, modeHonour)
		}
		o.modes = append(o.modes, strings.TrimSpace(m))
	}
	for _, s := range strings.Split(*hashes, ",") {
		h, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || h < 0 {
			return fmt.Errorf("-password-hashes: %q is not a count", s)
		}
		o.hashes = append(o.hashes, h)
	}
	o.password = "flood password 0123456789"

	dir, err := os.MkdirTemp("", "loginflood-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.bin == "" {
		if o.bin, err = build(ctx, dir); err != nil {
			return err
		}
	}
	hash, err := user.HashPassword(o.password)
	if err != nil {
		return err
	}

	var results []result
	for _, hashes := range o.hashes {
		// The baseline: /healthz of an idle server, in the same run.
		fmt.Fprintf(stderr, "baseline: /healthz of an idle server, --password-hashes %d\n", hashes)
		r, err := flood(ctx, o, dir, hash, hashes, 0, modeIdle)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		results = append(results, r)
		for _, n := range o.counts {
			for _, mode := range o.modes {
				// The hash time is measured just before each flood, as
				// the machine's load drifts.
				hashTime := measureHash(hash, o.password)
				fmt.Fprintf(stderr, "flood: %d logins, mode %s, --password-hashes %d; one hash %.1f ms\n", n, mode, hashes, ms(hashTime))
				r, err := flood(ctx, o, dir, hash, hashes, n, mode)
				if err != nil {
					return fmt.Errorf("%d logins, %s: %w", n, mode, err)
				}
				r.HashTime = hashTime
				r.Ideal = time.Duration(n) * hashTime / time.Duration(runtime.NumCPU())
				results = append(results, r)
			}
		}
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	printTable(stdout, results)
	return nil
}

// build compiles the CLI of the module this command belongs to.
func build(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		return "", fmt.Errorf("run from inside the silentrefresh module (go env GOMOD: %v)", err)
	}
	bin := filepath.Join(dir, "silentrefresh")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/silentrefresh")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	return bin, nil
}

// measureHash returns the median time of one password check on one core.
func measureHash(hash, password string) time.Duration {
	var d []time.Duration
	for range 9 {
		start := time.Now()
		_, _ = user.VerifyPassword(hash, password)
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// result is what one flood measured.
type result struct {
	Logins        int            `json:"logins"`
	Mode          string         `json:"mode"`
	Hashes        int            `json:"password_hashes"` // the server's --password-hashes
	Statuses      map[int]int    `json:"statuses"`        // first answers, in mode once; every answer in mode honour
	LoggedIn      int            `json:"logged_in"`       // clients that got a 200
	Attempts      int            `json:"attempts"`        // requests sent
	NoRetryAfter  int            `json:"no_retry_after"`  // 503 or 429 without a usable Retry-After
	MaxRetryAfter int            `json:"max_retry_after_s"`
	Failures      map[string]int `json:"failures,omitempty"` // transport errors
	LoginP50      time.Duration  `json:"login_p50_ns"`
	LoginP99      time.Duration  `json:"login_p99_ns"`
	LoginMax      time.Duration  `json:"login_max_ns"`
	HealthP50     time.Duration  `json:"healthz_p50_ns"`
	HealthP99     time.Duration  `json:"healthz_p99_ns"`
	HealthMax     time.Duration  `json:"healthz_max_ns"`
	HealthFailed  int            `json:"healthz_failed"`
	PeakRSS       int64          `json:"peak_rss_bytes"`
	Wall          time.Duration  `json:"wall_ns"`
	HashTime      time.Duration  `json:"hash_ns"`  // one argon2id check in this process, just before the flood
	Ideal         time.Duration  `json:"ideal_ns"` // logins × hash time / cores
}

// flood runs one flood of n logins against a fresh server.
func flood(ctx context.Context, o options, dir, hash string, hashes, n int, mode string) (result, error) {
	db := filepath.Join(dir, fmt.Sprintf("flood-%d-%d-%s.db", hashes, n, mode))
	if err := createUsers(ctx, "sqlite:"+db, hash, n); err != nil {
		return result{}, err
	}
	srv, err := startServer(ctx, o.bin, hashes, "sqlite:"+db, filepath.Join(dir, fmt.Sprintf("flood-%d-%d-%s.log", hashes, n, mode)))
	if err != nil {
		return result{}, err
	}
	defer srv.stop()

	fctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	probe := startProbe(fctx, srv.url)

	tr := &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	r := result{Logins: n, Mode: mode, Hashes: hashes, Statuses: map[int]int{}, Failures: map[string]int{}}
	var (
		mu        sync.Mutex // guards r and latencies
		latencies []time.Duration
		wg        sync.WaitGroup
		start     = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			body, _ := json.Marshal(map[string]string{"username": username(i), "password": o.password})
			<-start
			for fctx.Err() == nil {
				t0 := time.Now()
				status, retry, err := login(fctx, hc, srv.url, clientAddr(i), body)
				d := time.Since(t0)
				mu.Lock()
				r.Attempts++
				if err != nil {
					r.Failures[err.Error()]++
				} else {
					r.Statuses[status]++
					latencies = append(latencies, d)
				}
				if status == http.StatusOK {
					r.LoggedIn++
				}
				refused := status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests
				if refused && retry < 1 {
					r.NoRetryAfter++
				}
				r.MaxRetryAfter = max(r.MaxRetryAfter, retry)
				mu.Unlock()
				if mode == modeOnce || status == http.StatusOK || err != nil || !refused || retry < 1 {
					return
				}
				select {
				case <-time.After(time.Duration(retry) * time.Second):
				case <-fctx.Done():
				}
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	if mode == modeIdle {
		select {
		case <-time.After(2 * time.Second):
		case <-fctx.Done():
		}
	}
	r.Wall = time.Since(t0)
	h := probe.stop()
	r.PeakRSS, err = peakRSS(srv.cmd.Process.Pid)
	if err != nil {
		return r, err
	}
	r.LoginP50, r.LoginP99, r.LoginMax = quantiles(latencies)
	r.HealthP50, r.HealthP99, r.HealthMax = quantiles(h.latencies)
	r.HealthFailed = h.failed
	if len(r.Failures) == 0 {
		r.Failures = nil
	}
	return r, nil
}

func username(i int) string { return fmt.Sprintf("flood%05d", i) }

// clientAddr is the address client i logs in from, as its proxy says.
func clientAddr(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) }

// login sends one login and returns the status and the Retry-After.
func login(ctx context.Context, hc *http.Client, base, addr string, body []byte) (status, retryAfter int, err error) {
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/api/auth/login", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", addr)
	res, err := hc.Do(req)
	if err != nil {
		return 0, 0, errors.Unwrap(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	retryAfter, _ = strconv.Atoi(res.Header.Get("Retry-After"))
	return res.StatusCode, retryAfter, nil
}

// createUsers adds n users with one password hash to the database.
func createUsers(ctx context.Context, db, hash string, n int) error {
	st, err := dsn.Open(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now().UTC()
	for i := range n {
		u := user.User{ID: fmt.Sprintf("sub-%05d", i), Username: username(i), PasswordHash: hash, CreatedAt: now}
		if err := st.CreateUser(ctx, u); err != nil {
			return fmt.Errorf("create user %d: %w", i, err)
		}
	}
	return nil
}

// server is one "silentrefresh serve" process.
type server struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

func startServer(ctx context.Context, bin string, hashes int, db, logPath string) (*server, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--db", db, "--trusted-proxy", "127.0.0.1", "--log-level", "warn",
		"--password-hashes", strconv.Itoa(hashes))
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(s.done) }()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				found <- u
			}
		}
	}()
	select {
	case s.url = <-found:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("serve exited before listening; see %s", logPath)
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	s.stop()
	return nil, errors.New("serve did not start listening")
}

// stop ends the server and waits for it.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// peakRSS reads the peak resident set size of a process.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS: %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("peak RSS: no VmHWM in /proc/PID/status")
}

// probe measures /healthz while a flood runs.
type probe struct {
	cancel context.CancelFunc
	done   chan healthStats
}

type healthStats struct {
	latencies []time.Duration
	failed    int
}

func startProbe(ctx context.Context, base string) *probe {
	ctx, cancel := context.WithCancel(ctx)
	p := &probe{cancel: cancel, done: make(chan healthStats, 1)}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
	go func() {
		var h healthStats
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				p.done <- h
				return
			case <-t.C:
			}
			t0 := time.Now()
			res, err := hc.Get(base + "/healthz")
			if err != nil {
				if ctx.Err() == nil {
					h.failed++
				}
				continue
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				h.failed++
				continue
			}
			h.latencies = append(h.latencies, time.Since(t0))
		}
	}()
	return p
}

func (p *probe) stop() healthStats {
	p.cancel()
	return <-p.done
}

// quantiles returns the median, the 99th percentile and the maximum.
func quantiles(d []time.Duration) (p50, p99, maxD time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return at(0.50), at(0.99), d[len(d)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func printTable(w io.Writer, results []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "hashes\tlogins\tmode\trequests\t200\t503\t429\tother\tmax Retry-After\tlogin p50\tlogin p99\thealthz p50\thealthz p99\thealthz max\tpeak RSS\twall\thash\tideal\twall/ideal\t")
	for _, r := range results {
		other := r.Attempts - r.Statuses[200] - r.Statuses[503] - r.Statuses[429]
		hashes := strconv.Itoa(r.Hashes)
		if r.Hashes == 0 {
			hashes = "default"
		}
		ratio := "-"
		if r.Ideal > 0 {
			ratio = fmt.Sprintf("%.2f", r.Wall.Seconds()/r.Ideal.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d s\t%.0f ms\t%.0f ms\t%.1f ms\t%.1f ms\t%.1f ms\t%.0f MiB\t%.2f s\t%.0f ms\t%.2f s\t%s\t\n",
			hashes, r.Logins, r.Mode, r.Attempts, r.Statuses[200], r.Statuses[503], r.Statuses[429], other, r.MaxRetryAfter,
			ms(r.LoginP50), ms(r.LoginP99), ms(r.HealthP50), ms(r.HealthP99), ms(r.HealthMax),
			float64(r.PeakRSS)/(1<<20), r.Wall.Seconds(), ms(r.HashTime), r.Ideal.Seconds(), ratio)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nideal = logins × hash (one argon2id check, default parameters, measured before the flood) / %d cores\n", runtime.NumCPU())
	for _, r := range results {
		if r.NoRetryAfter > 0 || len(r.Failures) > 0 || r.HealthFailed > 0 || (r.Mode == modeHonour && r.LoggedIn != r.Logins) {
			fmt.Fprintf(w, "%d %s: %d refusals without Retry-After, %d of %d logged in, %d /healthz failures, transport errors %v\n",
				r.Logins, r.Mode, r.NoRetryAfter, r.LoggedIn, r.Logins, r.HealthFailed, r.Failures)
		}
	}
}
