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
	"os"
	"strings"
	"time"

	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/session"
)

// adminFlags are the flags of "serve" for operators: the admin listener and
// the per-user session cap.
type adminFlags struct {
	addr, tokenFile string
	maxSessions     int
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.addr, "admin-addr", "", "address of the admin listener (admin API and /metrics); off when empty. Needs --admin-token-file")
	fs.StringVar(&a.tokenFile, "admin-token-file", "", "file holding the admin listener's bearer token (at least 16 bytes; readable by its owner only)")
	fs.IntVar(&a.maxSessions, "max-sessions-per-user", session.DefaultMaxSessionsPerUser, "live sessions per user; a login past it revokes the user's least recently used session (0: no cap)")
}

// check validates the flags and reads the admin token.
func (a *adminFlags) check() (token string, err error) {
	switch {
	case a.maxSessions < 0:
		return "", fmt.Errorf("--max-sessions-per-user must not be negative, got %d", a.maxSessions)
	case a.addr == "" && a.tokenFile != "":
		return "", errors.New("--admin-token-file is set but --admin-addr is not")
	case a.addr == "":
		return "", nil
	case a.tokenFile == "":
		return "", errors.New("--admin-addr needs --admin-token-file: the admin listener is never open without a token")
	}
	return readAdminToken(a.tokenFile)
}

// sessionCap is the server.Config value of --max-sessions-per-user.
func (a *adminFlags) sessionCap() int {
	if a.maxSessions == 0 {
		return -1 // 0 on the command line: no cap
	}
	return a.maxSessions
}

// readAdminToken reads the admin token from path: the file's content
// without surrounding white space. It refuses a file that others than its
// owner may read or write, and an empty or short token.
func readAdminToken(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--admin-token-file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("--admin-token-file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("--admin-token-file %s: mode %04o lets group or others read or write it; chmod 600 it", path, perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--admin-token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case tok == "":
		return "", fmt.Errorf("--admin-token-file %s: the file is empty", path)
	case len(tok) < server.MinAdminTokenLen:
		return "", fmt.Errorf("--admin-token-file %s: the token is %d bytes, want at least %d", path, len(tok), server.MinAdminTokenLen)
	case strings.ContainsAny(tok, " \t\r\n"):
		return "", fmt.Errorf("--admin-token-file %s: the token must be one word without white space", path)
	}
	return tok, nil
}

// startAdmin serves h on addr until the returned stop is called, which
// shuts it down gracefully within timeout. It prints "admin listening on
// URL" to stdout.
func startAdmin(addr string, h http.Handler, log *slog.Logger, stdout io.Writer) (stop func(timeout time.Duration), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--admin-addr: %w", err)
	}
	hs := newHTTPServer(h, log)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener failed", "err", err)
		}
	}()
	log.Info("admin listener serving", "addr", ln.Addr().String())
	fmt.Fprintf(stdout, "admin listening on http://%s\n", ln.Addr())
	return func(timeout time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_ = hs.Shutdown(ctx)
		<-done
	}, nil
}
