// Command refresh measures refresh-token rotation over HTTP, SQLite against
// PostgreSQL, side by side in one run.
//
//	eval "$(scripts/postgres.sh start)"     # for the PostgreSQL rows
//	go run ./bench/refresh                  # 16 and 64 sessions, 5 s each
//	go run ./bench/refresh -sessions 8,64 -duration 10s -json
//
// For every backend and session count, a server (package server, the same
// handler the CLI serves) listens on a loopback port in this process, the
// given number of sessions log in, and each session then refreshes in a
// loop — one request in flight per session, always presenting its newest
// refresh token — for the duration. Every refresh is a real rotation: one
// write transaction, committed durably (SQLite synchronous=FULL in WAL
// mode, PostgreSQL fsync and synchronous_commit on). Server, database and
// load generator share the machine.
//
// The second table measures GET /api/heartbeat, whose bearer check looks
// the session up in the store on every request (one primary-key read) so
// that a revocation is seen at once by every replica, against the same
// check without the lookup (signature and claims only), and the lookup
// alone (Store.Family).
//
// PostgreSQL is taken from -pg or $SILENTREFRESH_TEST_POSTGRES; each run
// uses a new schema, dropped at the end. Without it the PostgreSQL rows
// are skipped.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "refresh:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	sessions  []int
	duration  time.Duration
	warmup    time.Duration
	backends  []string
	pg        string
	json      bool
	heartbeat bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("refresh", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sessions := fs.String("sessions", "16,64", "comma-separated numbers of concurrent sessions")
	backends := fs.String("backends", "sqlite,postgres", "comma-separated backends to measure")
	var o options
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measuring time per row")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each row")
	fs.StringVar(&o.pg, "pg", os.Getenv("SILENTREFRESH_TEST_POSTGRES"), "PostgreSQL DSN of a role that may create schemas")
	fs.BoolVar(&o.json, "json", false, "print JSON lines instead of tables")
	fs.BoolVar(&o.heartbeat, "heartbeat", true, "also measure the per-request session check of GET /api/heartbeat")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (server and load) to the file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for _, s := range strings.Split(*sessions, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-sessions: %q is not a positive number", s)
		}
		o.sessions = append(o.sessions, n)
	}
	for _, b := range strings.Split(*backends, ",") {
		o.backends = append(o.backends, strings.TrimSpace(b))
	}

	var results []result
	for _, name := range o.backends {
		b, err := openBackend(ctx, name, o.pg)
		if err != nil {
			return err
		}
		if b == nil {
			fmt.Fprintf(stderr, "skipping %s: no DSN (set -pg or SILENTREFRESH_TEST_POSTGRES)\n", name)
			continue
		}
		rs, err := measureBackend(ctx, b, o, stderr)
		b.close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, rs...)
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		for _, r := range results {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	printTables(stdout, results)
	return nil
}

// result is one row of the report.
type result struct {
	Backend  string  `json:"backend"`
	What     string  `json:"what"` // "refresh", "heartbeat", "heartbeat-no-check", "family-lookup"
	Sessions int     `json:"sessions"`
	Ops      int64   `json:"ops"`
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"per_second"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	// CPUPerOp is the CPU time per operation of this process (server and
	// load) plus, for a local PostgreSQL, its server processes.
	CPUPerOp float64 `json:"cpu_us_per_op"`
	// CPUBound is the throughput those CPU costs allow on this
	// machine's cores were nothing else running.
	CPUBound float64 `json:"cpu_bound_per_second"`
}

func printTables(w io.Writer, results []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "what\tbackend\tsessions\tops/s\tp50\tp99\terrors\tcpu/op\tcpu-bound ops/s\t")
	last := ""
	for _, r := range results {
		if last != "" && r.What != last && r.What == "refresh" {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t")
		}
		last = r.What
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2fms\t%.2fms\t%d\t%.0fµs\t%.0f\t\n",
			r.What, r.Backend, r.Sessions, r.PerSec, r.P50, r.P99, r.Errors, r.CPUPerOp, r.CPUBound)
	}
	tw.Flush()
}
