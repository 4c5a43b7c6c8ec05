package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store/dsn"
	"github.com/silentrefresh/silentrefresh/web"
)

// serveFlags are the flags of "serve".
type serveFlags struct {
	addr, db, issuer, logLevel string
	accessTTL, refreshTTL      time.Duration
	sessionTTL, grace          time.Duration
	allowedOrigins             stringList
	trustedProxies             prefixList
	shutdownTimeout            time.Duration
	passwordHashes             int
	cpuProfile                 string
	requireDPoP, dpopNonce     bool
	adopt                      adoptFlags
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// prefixList is a repeatable flag of network prefixes; a bare address is
// the prefix of that address alone.
type prefixList []netip.Prefix

func (l *prefixList) String() string {
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (l *prefixList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return fmt.Errorf("%q is neither a CIDR prefix (10.0.0.0/8) nor an address", s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		*l = append(*l, p.Masked())
	}
	return nil
}

func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var f serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&f.db, "db", defaultDSN, "database: sqlite:PATH or postgres://...")
	fs.StringVar(&f.issuer, "issuer", "", "public base URL of the server, the iss and aud of its tokens (default http://ADDR, with localhost for a loopback or wildcard address); replicas behind one load balancer must all be given the same one")
	fs.DurationVar(&f.accessTTL, "access-ttl", session.DefaultAccessTTL, "access token lifetime")
	fs.DurationVar(&f.refreshTTL, "refresh-ttl", session.DefaultRefreshTTL, "refresh token idle lifetime")
	fs.DurationVar(&f.sessionTTL, "session-ttl", session.DefaultSessionTTL, "session absolute lifetime")
	fs.DurationVar(&f.grace, "grace", session.DefaultGrace, "grace window in which a rotated refresh token is answered with the same successor (0 turns it off)")
	fs.Var(&f.allowedOrigins, "allowed-origin", "another origin whose pages may call the API (CORS) and use cookie mode, e.g. https://app.example.com (repeatable)")
	fs.BoolVar(&f.requireDPoP, "require-dpop", false, "refuse logins without a DPoP proof (RFC 9449); by default a login with a proof binds its session to the client's key and one without opens a bearer session")
	fs.BoolVar(&f.dpopNonce, "dpop-nonce", false, "make DPoP proofs carry a server nonce (RFC 9449 section 8, DPoP-Nonce header)")
	fs.Var(&f.trustedProxies, "trusted-proxy", "a reverse proxy, as CIDR or address, whose X-Forwarded-For and Forwarded headers name the client, for the per-address login limits and the log (repeatable; the headers of any other peer are ignored)")
	fs.IntVar(&f.passwordHashes, "password-hashes", 0, "most password hashes computed at once; logins beyond are answered 503 with Retry-After (0: one less than the cores, at least 1)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long to wait for requests in flight at shutdown")
	f.adopt.register(fs)
	var af adminFlags
	af.register(fs)
	fs.StringVar(&f.cpuProfile, "cpu-profile", "", "write a CPU profile (pprof) of the whole run to this file, for benchmarks; it is complete after a graceful shutdown")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: silentrefresh serve [flags]\n\nEvery flag may also be set as SILENTREFRESH_<FLAG>, e.g. SILENTREFRESH_ACCESS_TTL=1m.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected arguments %q", fs.Args())
	}
	if err := positive(map[string]time.Duration{"access-ttl": f.accessTTL, "refresh-ttl": f.refreshTTL, "session-ttl": f.sessionTTL}); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if f.passwordHashes < 0 {
		return fmt.Errorf("serve: --password-hashes must not be negative, got %d", f.passwordHashes)
	}
	if f.grace < 0 {
		return fmt.Errorf("serve: --grace must not be negative, got %v", f.grace)
	}
	adminToken, err := af.check()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("serve: --log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("serve: --cpu-profile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("serve: --cpu-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer ln.Close()
	if f.issuer == "" {
		f.issuer = defaultIssuer(ln.Addr())
	}
	st, err := openStore(ctx, f.db)
	if err != nil {
		return fmt.Errorf("serve: open database: %w", err)
	}
	defer st.Close()
	grace := f.grace
	if grace == 0 {
		grace = -1 // --grace 0: no grace window at all
	}
	cfg := server.Config{
		Store:          st,
		Issuer:         f.issuer,
		AccessTTL:      f.accessTTL,
		RefreshTTL:     f.refreshTTL,
		SessionTTL:     f.sessionTTL,
		Grace:          grace,
		AllowedOrigins: f.allowedOrigins,
		RequireDPoP:    f.requireDPoP,
		DPoPNonce:      f.dpopNonce,
		TrustedProxies: f.trustedProxies,
		PasswordHashes: f.passwordHashes,
		Logger:         log,
		Assets:         web.Handler(),

		MaxSessionsPerUser: af.sessionCap(),
		AdminToken:         adminToken,
	}
	if err := f.adopt.apply(&cfg); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if af.addr != "" {
		stop, err := startAdmin(af.addr, srv.AdminHandler(), log, stdout)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		defer stop(f.shutdownTimeout)
	}
	return serveUntilDone(ctx, ln, srv, log, f.shutdownTimeout, func() {
		log.Info("silentrefresh serving", "addr", ln.Addr().String(), "issuer", f.issuer, "db", dsn.Redact(f.db),
			"trusted_proxies", f.trustedProxies.String(), "access_ttl", f.accessTTL, "refresh_ttl", f.refreshTTL, "session_ttl", f.sessionTTL, "grace", f.grace,
			"require_dpop", f.requireDPoP)
		fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	})
}

// serveUntilDone serves srv on ln until ctx is cancelled (SIGINT, SIGTERM),
// then shuts down gracefully: no new connections, requests in flight
// finish within timeout.
func serveUntilDone(ctx context.Context, ln net.Listener, srv *server.Server, log *slog.Logger, timeout time.Duration, started func()) error {
	hs := newHTTPServer(srv, log)
	gcCtx, stopGC := context.WithCancel(ctx)
	defer stopGC()
	go srv.CollectExpired(gcCtx, time.Hour)

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	started()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

// newHTTPServer is the http.Server of every listener of serve (the API
// and the admin one): bounded header, read, write and idle times, and its
// errors logged as warnings.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// defaultIssuer is the issuer when --issuer is not given: the listener's
// address, with "localhost" for a loopback or wildcard one, the name a
// browser or curl on this machine uses. Deployments set --issuer.
func defaultIssuer(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "http://" + addr.String()
	}
	if tcp.IP.IsLoopback() || tcp.IP.IsUnspecified() {
		return fmt.Sprintf("http://localhost:%d", tcp.Port)
	}
	return "http://" + addr.String()
}
