package client_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/client/clienttest"
)

func TestFileStore(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.json")
	s := client.NewFileStore(path)

	if tok, err := s.Load(ctx); err != nil || !tok.IsZero() {
		t.Fatalf("missing file: %v %v", tok, err)
	}
	want := client.Tokens{AccessToken: "a", RefreshToken: "r", Expiry: epoch}
	if err := s.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx); err != nil || got != want {
		t.Fatalf("load = %v %v, want %v", got, err, want)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
	if err := s.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.Load(ctx); err != nil || !tok.IsZero() {
		t.Fatalf("after clear: %v %v", tok, err)
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx); err == nil {
		t.Error("a corrupt file loaded without error")
	}
}

// The lock excludes other FileStores on the same file, in this process too,
// and honours the caller's context.
func TestFileStoreLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	a, b := client.NewFileStore(path), client.NewFileStore(path)
	unlock, err := a.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Lock(ctx); err == nil {
		t.Fatal("second FileStore took a held lock")
	}
	unlock()
	unlock2, err := b.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	unlock2()
}

// Two Clients on two FileStores over one file refresh at the same moment,
// against a server with no grace at all (any second use of a refresh token
// is reuse): one refreshes, the other takes its tokens.
func TestTwoClientsOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	clock := clienttest.NewClock(epoch)
	srv := clienttest.NewServer(clienttest.Config{AccessTTL: time.Minute, Grace: -1, Now: clock.Now})
	t.Cleanup(srv.Close)
	if err := client.NewFileStore(path).Save(t.Context(), srv.Issue("alice")); err != nil {
		t.Fatal(err)
	}
	waiting := newCounter(2)
	clients := make([]*client.Client, 2)
	for i := range clients {
		c, err := client.New(client.Config{
			Refresher: client.JSONAPI(srv.URL, client.WithHTTPClient(srv.Client())),
			Store:     client.NewFileStore(path),
			Now:       clock.Now,
			Hooks:     client.Hooks{WaitStart: func() { waiting.inc() }},
		})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	for round := range 3 {
		clock.Advance(time.Minute)
		release := srv.Hold()
		if round > 0 {
			waiting = newCounter(2)
		}
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Go(func() {
				if status, _, err := get(t.Context(), c, srv.URL+"/api/me"); err != nil || status != 200 {
					t.Errorf("round %d: %d %v", round, status, err)
				}
			})
		}
		waiting.await(t)
		release()
		wg.Wait()
		st := srv.Stats()
		if st.Rotations != round+1 || st.ReuseDetected != 0 || st.InvalidGrants != 0 {
			t.Fatalf("round %d: server %+v; want %d rotations, no reuse", round, st, round+1)
		}
	}
	a, b := clients[0].Stats(), clients[1].Stats()
	if a.Refreshes+b.Refreshes != 3 || a.Adoptions+b.Adoptions != 3 {
		t.Errorf("refreshes %d+%d, adoptions %d+%d; want 3 and 3", a.Refreshes, b.Refreshes, a.Adoptions, b.Adoptions)
	}
}

// TestHelperProcess is the second process of TestTwoProcessesOneFile.
func TestHelperProcess(t *testing.T) {
	path, url := os.Getenv("CLIENT_HELPER_FILE"), os.Getenv("CLIENT_HELPER_URL")
	if path == "" {
		t.Skip("run by TestTwoProcessesOneFile")
	}
	c, err := client.New(client.Config{Refresher: client.JSONAPI(url), Store: client.NewFileStore(path)})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	in.Scan() // "go"
	status, _, err := get(context.Background(), c, url+"/api/me")
	s := c.Stats()
	fmt.Printf("status %d err %v refreshes %d adoptions %d\n", status, err, s.Refreshes, s.Adoptions)
	os.Exit(0)
}

// A second OS process shares the token file: both find the token expired
// and refresh at once, against a server with no grace. The file lock makes
// one of them refresh and the other adopt: no reuse, no failure.
func TestTwoProcessesOneFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	path := filepath.Join(t.TempDir(), "tokens.json")
	srv := clienttest.NewServer(clienttest.Config{Grace: -1})
	t.Cleanup(srv.Close)
	srv.SetLatency(50 * time.Millisecond) // widen the overlap
	for round := range 2 {
		tok := srv.Issue("alice")
		tok.Expiry = time.Now().Add(-time.Second) // both processes must refresh first
		if err := client.NewFileStore(path).Save(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		before := srv.Stats()

		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CLIENT_HELPER_FILE="+path, "CLIENT_HELPER_URL="+srv.URL)
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		out := bufio.NewScanner(stdout)
		if !out.Scan() || out.Text() != "ready" {
			t.Fatalf("helper: %q", out.Text())
		}
		c, err := client.New(client.Config{Refresher: client.JSONAPI(srv.URL), Store: client.NewFileStore(path)})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(stdin, "go\n")
		status, _, err := get(t.Context(), c, srv.URL+"/api/me")
		if err != nil || status != http.StatusOK {
			t.Errorf("round %d: this process: %d %v", round, status, err)
		}
		if !out.Scan() {
			t.Fatalf("round %d: helper said nothing", round)
		}
		line := out.Text()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
		if !strings.HasPrefix(line, "status 200 err <nil>") {
			t.Errorf("round %d: helper process: %s", round, line)
		}
		after := srv.Stats()
		if r := after.Rotations - before.Rotations; r != 1 || after.ReuseDetected != 0 || after.InvalidGrants != 0 {
			t.Errorf("round %d: %d rotations, reuse %d, invalid grants %d; want 1, 0, 0", round, r, after.ReuseDetected, after.InvalidGrants)
		}
		t.Logf("round %d: this process %+v; helper: %s", round, c.Stats(), line)
	}
}
