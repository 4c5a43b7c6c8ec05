package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/registry"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store/storetest"
)

// The tests in this file run the test binary again as child processes
// (TestChildProcess, selected by the environment) so that several
// processes share one database file, as separate server processes would.

const (
	envChild = "SILENTREFRESH_SQLITE_CHILD" // the child's job
	envPath  = "SILENTREFRESH_SQLITE_PATH"  // the database file
	envID    = "SILENTREFRESH_SQLITE_ID"    // the child's number (a family ID for "revoke")
)

// child is a child process started by startChild.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// startChild runs TestChildProcess in a new process. The child blocks until
// release closes its standard input, then does its job.
func startChild(t testing.TB, job, path string, id int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"="+job, envPath+"="+path, fmt.Sprintf("%s=%d", envID, id))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		c.stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return c
}

// line returns the next line the child printed that starts with "child:".
func (c *child) line(t testing.TB) string {
	t.Helper()
	for c.out.Scan() {
		if s, ok := strings.CutPrefix(c.out.Text(), "child: "); ok {
			return s
		}
	}
	t.Fatalf("child exited without a result: %v", c.out.Err())
	return ""
}

// TestChildProcess is the body of the child processes; it is skipped when
// the test binary is not run as a child.
func TestChildProcess(t *testing.T) {
	job := os.Getenv(envChild)
	if job == "" {
		t.Skip("only run as a child process of the tests in process_test.go")
	}
	ctx := context.Background()
	path, id := os.Getenv(envPath), os.Getenv(envID)
	// Wait for the parent to release every child at once.
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Printf("child: error %v\n", err)
		return
	}
	defer s.Close()
	switch job {
	case "secret":
		v, err := s.LoadOrStoreSecret(ctx, "rotation", []byte("candidate of child "+id))
		if err != nil {
			fmt.Printf("child: error %v\n", err)
			return
		}
		fmt.Printf("child: %s\n", hex.EncodeToString(v))
	case "exchange":
		// Eight goroutines of this process race those of the others.
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins int
			seen = map[string]bool{}
			errs []string
		)
		for g := range 8 {
			wg.Go(func() {
				at := storetest.T0.Add(time.Minute)
				next := &session.RefreshToken{
					Hash: storetest.Hash(fmt.Sprintf("next-%s-%d", id, g)), FamilyID: "raced",
					Generation: 1, IssuedAt: at, ExpiresAt: at.Add(time.Hour),
				}
				var won bool
				var succ []byte
				err := s.Exchange(ctx, storetest.Hash("first"), func(c session.Chain) (session.Change, error) {
					won, succ = !c.Token.Consumed(), c.Token.SuccessorHash
					if !won {
						return session.Change{}, nil
					}
					succ = next.Hash
					return session.Change{Consume: next, ConsumedAt: at}, nil
				})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err.Error())
					return
				}
				if won {
					wins++
				}
				seen[hex.EncodeToString(succ)] = true
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			fmt.Printf("child: error %s\n", strings.Join(errs, "; "))
			return
		}
		var succs []string
		for k := range seen {
			succs = append(succs, k)
		}
		fmt.Printf("child: %d %s\n", wins, strings.Join(succs, ","))
	case "kill":
		// Commit, say so, and wait to be killed.
		f := session.Family{ID: "kept", Subject: "s", CreatedAt: storetest.T0, ExpiresAt: storetest.T0.Add(time.Hour)}
		first := session.RefreshToken{Hash: storetest.Hash("first"), FamilyID: "kept", IssuedAt: storetest.T0, ExpiresAt: storetest.T0.Add(time.Hour)}
		if _, err := s.CreateFamilyCapped(ctx, f, first, 0, ""); err != nil {
			fmt.Printf("child: error %v\n", err)
			return
		}
		at := storetest.T0.Add(time.Minute)
		next := &session.RefreshToken{Hash: storetest.Hash("second"), FamilyID: "kept", Generation: 1, IssuedAt: at, ExpiresAt: at.Add(time.Hour)}
		if err := s.Exchange(ctx, first.Hash, func(session.Chain) (session.Change, error) {
			return session.Change{Consume: next, ConsumedAt: at}, nil
		}); err != nil {
			fmt.Printf("child: error %v\n", err)
			return
		}
		if err := s.RevokeFamily(ctx, "kept", at, "logout"); err != nil {
			fmt.Printf("child: error %v\n", err)
			return
		}
		fmt.Printf("child: committed\n")
		select {}
	case "revoke":
		// Revoke the family named by the child's ID (familycache_test.go).
		if err := s.RevokeFamily(ctx, id, storetest.T0.Add(time.Minute), "admin"); err != nil {
			fmt.Printf("child: error %v\n", err)
			return
		}
		fmt.Printf("child: revoked\n")
	case "rotate":
		// Rotate one family back to back until killed, a refresh load on
		// the file (clientcache_bench_test.go).
		fid := "rotated-" + id
		now := time.Now().UTC()
		cur := session.RefreshToken{Hash: storetest.Hash(fid), FamilyID: fid, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
		f := session.Family{ID: fid, Subject: "s", CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
		if _, err := s.CreateFamilyCapped(ctx, f, cur, 0, ""); err != nil {
			fmt.Printf("child: error %v\n", err)
			return
		}
		fmt.Printf("child: rotating\n")
		for n := 1; ; n++ {
			next := &session.RefreshToken{
				Hash: storetest.Hash(fmt.Sprint(fid, n)), FamilyID: fid,
				Generation: cur.Generation + 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour),
			}
			if err := s.Exchange(ctx, cur.Hash, func(session.Chain) (session.Change, error) {
				return session.Change{Consume: next, ConsumedAt: now}, nil
			}); err != nil {
				fmt.Printf("child: error %v\n", err)
				return
			}
			cur = *next
		}
	case "client":
		// Give client "app" a new secret (clientcache_test.go).
		if err := s.RemoveClient(ctx, "app"); err != nil {
			fmt.Printf("child: error %v\n", err)
			return
		}
		if err := s.AddClient(ctx, registry.Client{ID: "app", SecretHash: "from child " + id, CreatedAt: storetest.T0}); err != nil {
			fmt.Printf("child: error %v\n", err)
			return
		}
		fmt.Printf("child: replaced\n")
	default:
		t.Fatalf("unknown child job %q", job)
	}
}

// release lets every child go at once.
func release(children []*child) {
	for _, c := range children {
		c.stdin.Close()
	}
}

// TestProcessesOpenNewFile has four processes open a database file that
// does not exist yet, at the same time: every one migrates or waits for the
// migration, and all agree on one secret.
func TestProcessesOpenNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "shared.db")
	var children []*child
	for i := range 4 {
		children = append(children, startChild(t, "secret", path, i))
	}
	release(children)
	first := ""
	for i, c := range children {
		got := c.line(t)
		if strings.HasPrefix(got, "error") {
			t.Fatalf("child %d: %s", i, got)
		}
		if first == "" {
			first = got
		} else if got != first {
			t.Errorf("child %d got secret %s, child 0 got %s", i, got, first)
		}
	}
}

// TestProcessesExchange has four processes of eight goroutines each
// exchange one token: exactly one rotation in all, and every loser sees it.
func TestProcessesExchange(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	s := openTest(t, path)
	defer s.Close()
	f := session.Family{ID: "raced", Subject: "s", CreatedAt: storetest.T0, ExpiresAt: storetest.T0.Add(time.Hour)}
	first := session.RefreshToken{Hash: storetest.Hash("first"), FamilyID: "raced", IssuedAt: storetest.T0, ExpiresAt: storetest.T0.Add(time.Hour)}
	if _, err := s.CreateFamilyCapped(ctx, f, first, 0, ""); err != nil {
		t.Fatal(err)
	}
	var children []*child
	for i := range 4 {
		children = append(children, startChild(t, "exchange", path, i))
	}
	release(children)
	wins := 0
	for i, c := range children {
		var n int
		var succs string
		got := c.line(t)
		if _, err := fmt.Sscanf(got, "%d %s", &n, &succs); err != nil {
			t.Fatalf("child %d: %s", i, got)
		}
		wins += n
		toks, err := s.FamilyTokens(ctx, "raced")
		if err != nil || len(toks) != 2 {
			t.Fatalf("FamilyTokens = %d, %v; want 2 tokens", len(toks), err)
		}
		if want := hex.EncodeToString(toks[1].Hash); succs != want {
			t.Errorf("child %d saw successors %s, want only %s", i, succs, want)
		}
	}
	if wins != 1 {
		t.Errorf("%d rotations applied across processes, want 1", wins)
	}
}

// TestKillDurability kills a process with SIGKILL right after its writes
// returned, and finds them all on reopening.
func TestKillDurability(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kill.db")
	c := startChild(t, "kill", path, 0)
	release([]*child{c})
	if got := c.line(t); got != "committed" {
		t.Fatalf("child: %s", got)
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Logf("no -wal file left behind: %v", err)
	}

	s := openTest(t, path)
	defer s.Close()
	fam, err := s.Family(ctx, "kept")
	if err != nil {
		t.Fatalf("Family after kill -9: %v", err)
	}
	if !fam.Revoked() || fam.RevokeReason != "logout" {
		t.Errorf("revocation lost: %+v", fam)
	}
	toks, err := s.FamilyTokens(ctx, "kept")
	if err != nil || len(toks) != 2 || !toks[0].Consumed() || !bytes.Equal(toks[0].SuccessorHash, storetest.Hash("second")) {
		t.Errorf("rotation lost: %+v, %v", toks, err)
	}
}
