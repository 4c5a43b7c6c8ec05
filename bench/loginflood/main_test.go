package main

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestRunSmoke floods a real server briefly, so that the harness keeps
// working; the numbers of so small a flood mean nothing.
func TestRunSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server")
	}
	var out, log bytes.Buffer
	if err := run(t.Context(), []string{"-n", "12", "-json"}, &out, &log); err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	var results []result
	if err := json.Unmarshal(out.Bytes(), &results); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(results) != 3 || results[0].Mode != modeIdle {
		t.Fatalf("%d results, want the idle baseline, once and honour", len(results))
	}
	if results[0].HealthP50 == 0 {
		t.Errorf("baseline: no /healthz measured: %+v", results[0])
	}
	results = results[1:]
	for _, r := range results {
		if r.PeakRSS == 0 || r.Wall <= 0 || r.Attempts < r.Logins || r.NoRetryAfter != 0 || len(r.Failures) != 0 {
			t.Errorf("%s: %+v", r.Mode, r)
		}
		if r.Statuses[200]+r.Statuses[503] != r.Attempts {
			t.Errorf("%s: answers %v, want only 200 and 503", r.Mode, r.Statuses)
		}
		if r.MaxRetryAfter > 1 {
			t.Errorf("%s: Retry-After up to %d s", r.Mode, r.MaxRetryAfter)
		}
	}
	if h := results[1]; h.Mode != modeHonour || h.LoggedIn != h.Logins {
		t.Errorf("honour: %d of %d logged in", h.LoggedIn, h.Logins)
	}
}
