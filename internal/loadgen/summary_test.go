package loadgen

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", name, got)
	}
}

func sampleSummary() Summary {
	grace, reuse := int64(98), int64(1)
	s := Summary{
		Mode: "demo", OK: true, URLs: []string{"http://127.0.0.1:8080"}, API: APIJSON,
		Users: 50, Workers: 8, Duration: 20.02,
		Requests: 1234567, RequestsPerSecond: 61666.3, Failures: 0, ExpectedFailures: 12,
		SessionsEnded: 1, Refreshes: 612, RefreshesAfter401: 48, Adoptions: 18, RefreshAttempts: 710,
		LostRefreshAnswers: 98, Replays: 400, Waits: 3200, LongestWaitMS: 45.21,
		LatencyP50MS: 0.93, LatencyP99MS: 12.3, LatencyMaxMS: 80.1,
		GraceReplays: &grace, ReuseDetections: &reuse,
		ServerRefreshes: map[string]int64{"rotated": 612, "grace_replay": 98, "reused": 1, "revoked": 1},
		Faults: []FaultSummary{
			{Name: "signing key dropped", Start: 5, End: 5},
			{Name: "refresh answers lost", Start: 8, End: 12},
		},
		Checks: []Check{},
	}
	s.AddCheck("no request failed outside the attacked session", true, "0 of 1234567 requests failed")
	s.AddCheck("reuse detected once", true, "")
	return s
}

func TestSummaryTable(t *testing.T) {
	var b bytes.Buffer
	if err := sampleSummary().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.golden.txt", b.Bytes())

	failing := sampleSummary()
	failing.Failures = 3
	failing.Errors = []ErrorCount{{Error: "HTTP 401 Unauthorized", Count: 3, FirstAt: 5.01, FirstUser: "user-07"}}
	failing.GraceReplays, failing.ReuseDetections = nil, nil
	failing.ServerMetricsError = "connection refused"
	failing.AddCheck("no request failed", false, "3 failed")
	b.Reset()
	if err := failing.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"3 × HTTP 401 Unauthorized (first at 5.0s, user-07)",
		"FAIL  no request failed: 3 failed",
		"result: FAILED (1 of 3 checks)",
		"server counters unavailable: connection refused",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	if !regexp.MustCompile(`(?m)^  grace replays +\? `).MatchString(b.String()) {
		t.Errorf("unknown grace replays not shown as ?:\n%s", b.String())
	}
}

func TestSummaryJSON(t *testing.T) {
	var b bytes.Buffer
	s := sampleSummary()
	if err := s.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Count(b.String(), "\n") != 1 || !strings.HasSuffix(b.String(), "}\n") {
		t.Errorf("not one JSON object on one line: %q", b.String())
	}
	var back Summary
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Requests != s.Requests || *back.ReuseDetections != 1 || len(back.Checks) != 2 || !back.OK {
		t.Errorf("round trip lost data: %+v", back)
	}
	var raw map[string]any
	if err := json.Unmarshal(b.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"requests", "failures", "refreshes", "grace_replays", "reuse_detections",
		"latency_p50_ms", "latency_p99_ms", "longest_wait_ms", "checks", "ok"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}

	// Unknown server counters are null, not zero.
	s.GraceReplays, s.ReuseDetections = nil, nil
	b.Reset()
	if err := s.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"grace_replays":null`) || !strings.Contains(b.String(), `"reuse_detections":null`) {
		t.Errorf("missing counters not null: %s", b.String())
	}
}

func TestAddCheck(t *testing.T) {
	s := Summary{OK: true}
	s.AddCheck("a", true, "")
	if !s.OK {
		t.Fatal("OK after a passing check")
	}
	s.AddCheck("b", false, "")
	s.AddCheck("c", true, "")
	if s.OK || len(s.Checks) != 3 {
		t.Errorf("OK %v with %d checks, want false and 3", s.OK, len(s.Checks))
	}
}

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var d []time.Duration
		for _, v := range n {
			d = append(d, time.Duration(v)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(hundred...), 0.5, 50 * time.Millisecond},
		{ms(hundred...), 0.99, 99 * time.Millisecond},
		{ms(hundred...), 1, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.in, tt.q); got != tt.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tt.in), tt.q, got, tt.want)
		}
	}
}

func TestCount(t *testing.T) {
	tests := map[int64]string{0: "0", 999: "999", 1000: "1 000", 1234567: "1 234 567", -4500: "-4 500"}
	for n, want := range tests {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}
