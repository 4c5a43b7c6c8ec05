package main

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// TestRunSmoke runs every row briefly, so that the harness keeps working;
// the numbers of so short a run mean nothing.
func TestRunSmoke(t *testing.T) {
	backends := "sqlite"
	if os.Getenv("SILENTREFRESH_TEST_POSTGRES") != "" {
		backends += ",postgres"
	}
	var out, log bytes.Buffer
	err := run(t.Context(), []string{"-sessions", "1,3", "-duration", "200ms", "-warmup", "50ms", "-backends", backends, "-json"}, &out, &log)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	rows := map[string]int{}
	dec := json.NewDecoder(&out)
	for dec.More() {
		var r result
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		if r.Ops == 0 || r.Errors != 0 {
			t.Errorf("%s %s with %d sessions: %d ops, %d errors", r.Backend, r.What, r.Sessions, r.Ops, r.Errors)
		}
		rows[r.Backend]++
	}
	for b, n := range rows {
		if n != 5 { // refresh ×2, heartbeat, heartbeat-no-check, family-lookup
			t.Errorf("%s: %d rows, want 5", b, n)
		}
	}
	if len(rows) == 0 {
		t.Errorf("no rows:\n%s", log.String())
	}
}
