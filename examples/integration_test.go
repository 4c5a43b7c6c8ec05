// Package examples holds programs that show how to adopt silentrefresh;
// TestIntegrationGuide runs the commands of docs/INTEGRATION.md.
package examples

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shBlock matches a fenced block whose info string is "sh".
var shBlock = regexp.MustCompile("(?ms)^```sh\n(.*?)^```\n")

// TestIntegrationGuide runs every sh block of docs/INTEGRATION.md, as
// written and in order, in one bash with -euo pipefail, from the root of
// the checkout, on free ports. The blocks check their own results (jq -e,
// curl -f), so a guide that no longer works fails here. The servers it
// starts in the background are stopped with their process group.
func TestIntegrationGuide(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq", "node", "npm", "/usr/bin/python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the guide needs %s: %v", tool, err)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "INTEGRATION.md"))
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	blocks := shBlock.FindAllSubmatch(doc, -1)
	if len(blocks) < 10 {
		t.Fatalf("found %d sh blocks in the guide, expected every section's", len(blocks))
	}
	for i, b := range blocks {
		fmt.Fprintf(&script, "echo '--- block %d'\n%s", i+1, b[1])
	}
	script.WriteString("echo '--- guide done'\n")

	tmp := t.TempDir()
	logPath := filepath.Join(tmp, "guide.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	for _, name := range []string{"PORT", "EMBED_PORT", "GO_API_PORT", "NODE_API_PORT", "PY_API_PORT"} {
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", name, freePort(t)))
	}
	// Output goes to a file, not a pipe: the servers started in the
	// background keep theirs open after bash exits.
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGTERM) })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(4 * time.Minute):
		syscall.Kill(-pgid, syscall.SIGKILL)
		err = fmt.Errorf("timed out: %w", <-done)
	}
	out, _ := os.ReadFile(logPath)
	if err != nil || !strings.Contains(string(out), "--- guide done") {
		t.Fatalf("the guide's commands failed: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("%s", out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
