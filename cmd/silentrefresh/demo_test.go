package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/silentrefresh/silentrefresh/internal/loadgen"
)

// decodeSummary decodes out, which must hold exactly one JSON object.
func decodeSummary(t *testing.T, out []byte) loadgen.Summary {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(out))
	var s loadgen.Summary
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("stdout is not a JSON summary: %v\n%s", err, out)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("stdout holds more than one JSON object:\n%s", out)
	}
	return s
}

// checkSVG fails unless path holds a well-formed SVG document.
func checkSVG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	var root string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("timeline is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Fatalf("timeline root element is %q, want svg", root)
	}
}

// The whole demo, short: every injected fault is survived, the attack is
// detected exactly once, and only the attacked session ends.
func TestDemo(t *testing.T) {
	tl := filepath.Join(t.TempDir(), "timeline.svg")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"demo", "--duration", "6s", "--users", "8", "--workers", "4", "--think", "25ms", "--json", "--timeline", tl}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("demo failed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.Bytes(), stderr.Bytes())
	}
	s := decodeSummary(t, stdout.Bytes())
	t.Logf("demo: %d requests, %d refreshes (%d after a 401, %d adopted), %d lost answers, p50 %.1f ms, p99 %.1f ms, longest wait %.0f ms",
		s.Requests, s.Refreshes, s.RefreshesAfter401, s.Adoptions, s.LostRefreshAnswers, s.LatencyP50MS, s.LatencyP99MS, s.LongestWaitMS)
	if !s.OK {
		t.Errorf("summary not OK: %+v\nstderr:\n%s", s.Checks, stderr.Bytes())
	}
	if s.Failures != 0 || s.UnexpectedSessionsEnded != 0 {
		t.Errorf("%d unexpected failures, %d sessions ended unexpectedly; errors %+v", s.Failures, s.UnexpectedSessionsEnded, s.Errors)
	}
	if s.ReuseDetections == nil || *s.ReuseDetections != 1 {
		t.Errorf("reuse detections = %v, want exactly 1", s.ReuseDetections)
	}
	if s.SessionsEnded != 1 {
		t.Errorf("sessions ended = %d, want 1 (the attacked one)", s.SessionsEnded)
	}
	if s.GraceReplays == nil || *s.GraceReplays < 1 || s.LostRefreshAnswers < 1 {
		t.Errorf("grace replays %v, lost answers %d: the lost-answer fault did not run", s.GraceReplays, s.LostRefreshAnswers)
	}
	if s.Requests == 0 || s.Refreshes == 0 || s.RefreshesAfter401 == 0 || s.Adoptions == 0 {
		t.Errorf("summary %+v: some part of the story did not happen", s)
	}
	if len(s.Checks) != 6 {
		t.Errorf("%d checks, want 6: %+v", len(s.Checks), s.Checks)
	}
	if len(s.Faults) != 3 {
		t.Errorf("faults %+v, want 3", s.Faults)
	}
	// The live view went to stderr, plain lines as it is not a terminal.
	if !strings.Contains(stderr.String(), "requests ") || strings.Contains(stderr.String(), "\x1b[") {
		t.Errorf("live view on stderr:\n%s", stderr.Bytes())
	}
	checkSVG(t, tl)
}

// Bad flags are refused before anything starts.
func TestDemoFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--users", "1"}, "--users must be at least 2"},
		{[]string{"--workers", "0"}, "--workers must be at least 1"},
		{[]string{"--grace", "0s"}, "--grace must be a positive duration"},
		{[]string{"--duration", "3s"}, "too short for the attack"},
		{[]string{"--think", "-1s"}, "--think must not be negative"},
		{[]string{"--key-drop", "later"}, "--key-drop must be staged or immediate"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--nope"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), append([]string{"demo"}, tt.args...), nil, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error()+stderr.String(), tt.want) {
				t.Errorf("err = %v (stderr %q), want it to mention %q", err, stderr.String(), tt.want)
			}
		})
	}
}
