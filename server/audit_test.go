package server_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/server"
)

// logBuffer collects a server's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the log lines with the given message.
func (b *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func withLog(b *logBuffer) func(*server.Config) {
	return func(c *server.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
}

// A thief who rotated a stolen token twice (T → S → S2) loses the session
// as soon as the owner presents T inside the grace window: the family is
// revoked, the refusal is logged with the session and the client's
// address (never a token), and counted as a theft signal.
func TestThiefLosesThroughSuperseded(t *testing.T) {
	var logs logBuffer
	e := newEnv(t, withLog(&logs))
	access, stolen := e.login()
	s1 := e.refresh(stolen) // the thief
	if s1.status != 200 {
		t.Fatal(s1.raw)
	}
	s2 := e.refresh(s1.body["refreshToken"].(string))
	if s2.status != 200 {
		t.Fatal(s2.raw)
	}
	e.clock.Advance(3 * time.Second)
	r := e.refresh(stolen) // the owner, inside grace
	if r.status != 401 || r.body["error"] != "invalid_grant" || r.body["error_description"] != "superseded" {
		t.Fatalf("owner's refresh: %d %s, want 401 invalid_grant superseded", r.status, r.raw)
	}
	thiefToken := s2.body["refreshToken"].(string)
	if r := e.refresh(thiefToken); r.status != 401 || r.body["error_description"] != "revoked" {
		t.Fatalf("thief's newest token: %d %s, want revoked", r.status, r.raw)
	}
	e.clock.Advance(time.Hour)
	if r := e.refresh(thiefToken); r.status != 401 || r.body["error_description"] != "revoked" {
		t.Fatalf("thief's later refresh: %d %s, want revoked", r.status, r.raw)
	}
	if r := e.get("/api/me", s2.body["accessToken"].(string)); r.status != 401 {
		t.Errorf("thief's access token on a session-checked route: %d, want 401", r.status)
	}

	recs := logs.records(t, "refresh refused: session revoked")
	if len(recs) != 1 {
		t.Fatalf("%d revocation log lines, want 1:\n%s", len(recs), logs.String())
	}
	if rec := recs[0]; rec["level"] != "WARN" || rec["reason"] != "superseded" || rec["sid"] == "" || rec["sid"] == nil || rec["client"] != "127.0.0.1" {
		t.Errorf("revocation logged as %v, want WARN with sid, client 127.0.0.1 and reason superseded", rec)
	}
	for _, tok := range []string{stolen, access, s1.body["refreshToken"].(string), s1.body["accessToken"].(string), thiefToken} {
		if strings.Contains(logs.String(), tok) {
			t.Fatal("a token is in the log")
		}
	}
	if got := e.metric(server.MetricRefreshes + `{outcome="superseded"}`); got != "1" {
		t.Errorf("superseded refreshes = %q, want 1", got)
	}
	if got := e.metric(server.MetricTheftSignals + `{reason="superseded"}`); got != "1" {
		t.Errorf("theft signals (superseded) = %q, want 1", got)
	}
	if got := e.metric(server.MetricTheftSignals + `{reason="reused"}`); got != "0" {
		t.Errorf("theft signals (reused) = %q, want 0", got)
	}
}

// Every grace replay and every revoking refusal is in the log, for an
// operator auditing a suspected theft; refusals that revoke nothing are
// not warnings.
func TestRefreshAuditLog(t *testing.T) {
	var logs logBuffer
	e := newEnv(t, withLog(&logs))
	_, rt := e.login()
	first := e.refresh(rt)
	if r := e.refresh(rt); r.status != 200 || r.body["refreshToken"] != first.body["refreshToken"] {
		t.Fatalf("grace replay: %d %s", r.status, r.raw)
	}
	replays := logs.records(t, "refresh grace replay")
	if len(replays) != 1 || replays[0]["level"] != "INFO" || replays[0]["client"] != "127.0.0.1" || replays[0]["sid"] == nil {
		t.Fatalf("grace replay logged as %v, want one INFO line with sid and client", replays)
	}
	e.clock.Advance(11 * time.Second)
	if r := e.refresh(rt); r.body["error_description"] != "reused" {
		t.Fatalf("reuse: %d %s", r.status, r.raw)
	}
	e.refresh("never-issued")
	recs := logs.records(t, "refresh refused: session revoked")
	if len(recs) != 1 || recs[0]["reason"] != "reused" || recs[0]["sid"] != replays[0]["sid"] {
		t.Fatalf("reuse logged as %v, want one line for the session %v", recs, replays[0]["sid"])
	}
	if got := e.metric(server.MetricTheftSignals + `{reason="reused"}`); got != "1" {
		t.Errorf("theft signals (reused) = %q, want 1", got)
	}
	if strings.Contains(logs.String(), "never-issued") || strings.Contains(logs.String(), rt) {
		t.Error("a presented token is in the log")
	}
}
