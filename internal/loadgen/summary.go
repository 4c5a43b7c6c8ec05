package loadgen

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
)

// Summary is what a run did, as numbers. Its JSON form is what --json
// prints.
type Summary struct {
	// Mode names the command that ran: "demo" or "load".
	Mode string `json:"mode"`
	// OK is true when every check passed.
	OK       bool     `json:"ok"`
	URLs     []string `json:"urls"`
	API      API      `json:"api"`
	Users    int      `json:"users"`
	Workers  int      `json:"workers_per_user"`
	Duration float64  `json:"duration_seconds"`

	Requests          int64   `json:"requests"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	// Failures are failed requests in sessions not expected to end.
	Failures int64 `json:"failures"`
	// ExpectedFailures are failed requests in sessions expected to end
	// (an attacked session, after the attack).
	ExpectedFailures int64 `json:"expected_failures"`
	// SessionsEnded counts sessions that ended with ErrReauthRequired;
	// UnexpectedSessionsEnded those of them not expected to end.
	SessionsEnded           int `json:"sessions_ended"`
	UnexpectedSessionsEnded int `json:"unexpected_sessions_ended"`

	// Refreshes that got new tokens from the server; of them,
	// RefreshesAfter401 were started by a request the server refused.
	Refreshes         int64 `json:"refreshes"`
	RefreshesAfter401 int64 `json:"refreshes_after_401"`
	// Adoptions are refreshes that found new tokens saved by another
	// process sharing the token file.
	Adoptions       int64 `json:"adoptions"`
	RefreshFailures int64 `json:"refresh_failures"`
	RefreshAttempts int64 `json:"refresh_attempts"`
	// LostRefreshAnswers are refresh requests that got no answer.
	LostRefreshAnswers int64 `json:"lost_refresh_answers"`
	// Replays are requests sent again with a new token after a 401.
	Replays int64 `json:"replays_after_401"`
	// Waits are requests that waited for a refresh.
	Waits         int64   `json:"waits"`
	LongestWaitMS float64 `json:"longest_wait_ms"`
	LatencyP50MS  float64 `json:"latency_p50_ms"`
	LatencyP99MS  float64 `json:"latency_p99_ms"`
	LatencyMaxMS  float64 `json:"latency_max_ms"`
	// Failovers are requests sent to another replica after one could not
	// answer.
	Failovers int64 `json:"failovers"`

	// GraceReplays and ReuseDetections are the server's counters
	// (server.MetricRefreshes, grace_replay and reused) over the run;
	// null when /metrics could not be read.
	GraceReplays    *int64 `json:"grace_replays"`
	ReuseDetections *int64 `json:"reuse_detections"`
	// ServerRefreshes are all the server's refresh outcomes over the run.
	ServerRefreshes    map[string]int64 `json:"server_refreshes,omitempty"`
	ServerMetricsError string           `json:"server_metrics_error,omitempty"`

	// Errors are the commonest failures, most frequent first.
	Errors []ErrorCount `json:"errors,omitempty"`
	// Faults are the faults injected.
	Faults []FaultSummary `json:"faults,omitempty"`
	// Checks are what the run was expected to show.
	Checks []Check `json:"checks"`
}

// ErrorCount is how often one failure happened, and the first time.
type ErrorCount struct {
	Error string `json:"error"`
	Count int64  `json:"count"`
	// FirstAt is when the first such request was sent, in seconds since
	// the start; FirstUser is whose it was.
	FirstAt   float64 `json:"first_at_seconds"`
	FirstUser string  `json:"first_user"`
}

// FaultSummary is one injected fault, in seconds since the start.
type FaultSummary struct {
	Name  string  `json:"name"`
	Start float64 `json:"start_seconds"`
	End   float64 `json:"end_seconds"`
}

// Check is one expectation and whether the run met it.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// AddCheck appends a check; OK stays true only while every check passes.
func (s *Summary) AddCheck(name string, ok bool, detail string) {
	s.Checks = append(s.Checks, Check{Name: name, OK: ok, Detail: detail})
	s.OK = s.OK && ok
}

// Summary computes the summary of the last Run. It reads the servers'
// counters once more, to count the grace replays and reuse detections
// since Run started. The summary has no checks yet: see AddCheck.
func (g *Generator) Summary(ctx context.Context) Summary {
	end := g.finished()
	if end.IsZero() {
		end = time.Now()
	}
	elapsed := end.Sub(g.Started())
	s := Summary{
		OK:                 true,
		API:                g.cfg.API,
		Users:              len(g.users),
		Workers:            g.cfg.Workers,
		Duration:           round(elapsed.Seconds(), 2),
		Requests:           g.requests.Load(),
		Failures:           g.failures.Load(),
		ExpectedFailures:   g.expected.Load(),
		Refreshes:          g.refreshes.Load(),
		RefreshesAfter401:  g.reactive.Load(),
		Adoptions:          g.adoptions.Load(),
		RefreshFailures:    g.refreshFailures.Load(),
		RefreshAttempts:    g.attempts.Load(),
		LostRefreshAnswers: g.lost.Load(),
		Replays:            g.replays.Load(),
		Waits:              g.waits.Load(),
		LongestWaitMS:      ms(time.Duration(g.maxWait.Load())),
		Failovers:          g.failovers.Load(),
		Checks:             []Check{},
	}
	for _, u := range g.urls {
		s.URLs = append(s.URLs, u.String())
	}
	if elapsed > 0 {
		s.RequestsPerSecond = round(float64(s.Requests)/elapsed.Seconds(), 1)
	}
	var durs []time.Duration
	for _, u := range g.users {
		for _, w := range u.workers {
			for _, smp := range w.samples {
				durs = append(durs, smp.dur)
			}
		}
		if _, _, ended := u.Ended(); ended {
			s.SessionsEnded++
			if !u.expectEnd.Load() {
				s.UnexpectedSessionsEnded++
			}
		}
	}
	slices.Sort(durs)
	s.LatencyP50MS = ms(percentile(durs, 0.50))
	s.LatencyP99MS = ms(percentile(durs, 0.99))
	if len(durs) > 0 {
		s.LatencyMaxMS = ms(durs[len(durs)-1])
	}

	g.mu.Lock()
	before, beforeErr := g.before, g.beforeErr
	for _, e := range g.errors {
		s.Errors = append(s.Errors, *e)
	}
	for _, f := range g.faults {
		s.Faults = append(s.Faults, FaultSummary{Name: f.name, Start: round(g.since(f.start).Seconds(), 2), End: round(g.since(f.end).Seconds(), 2)})
	}
	g.mu.Unlock()
	slices.SortFunc(s.Errors, func(a, b ErrorCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Error, b.Error))
	})
	if len(s.Errors) > 5 {
		s.Errors = s.Errors[:5]
	}
	slices.SortStableFunc(s.Faults, func(a, b FaultSummary) int { return cmp.Compare(a.Start, b.Start) })

	after, afterErr := g.scrapeEach(ctx)
	if len(after) > 0 {
		s.ServerRefreshes = counterDelta(before, after)
		grace, reused := s.ServerRefreshes[string(session.OutcomeGraceReplay)], s.ServerRefreshes[string(session.ReasonReused)]
		s.GraceReplays, s.ReuseDetections = &grace, &reused
	}
	switch {
	case len(after) == 0 && afterErr != nil:
		s.ServerMetricsError = afterErr.Error()
	case afterErr != nil:
		s.ServerMetricsError = fmt.Sprintf("counted over %d of %d replicas: %v", len(after), len(g.urls), afterErr)
	case beforeErr != nil:
		s.ServerMetricsError = fmt.Sprintf("some replicas counted from their start: %v", beforeErr)
	}
	return s
}

// percentile is the nearest-rank q-quantile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 2) }

func round(f float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(f*p) / p
}

// WriteJSON writes s as one JSON object and a newline.
func (s Summary) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("loadgen: summary: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("loadgen: summary: %w", err)
	}
	return nil
}

// WriteTable writes s as a table for people.
func (s Summary) WriteTable(w io.Writer) error {
	var b strings.Builder
	mode := cmp.Or(s.Mode, "load")
	fmt.Fprintf(&b, "\nsilentrefresh %s: %d users × %d workers, %.1fs, %s\n\n", mode, s.Users, s.Workers, s.Duration, strings.Join(s.URLs, " "))
	row := func(name, value, note string) {
		line := fmt.Sprintf("  %-27s %14s", name, value)
		if note != "" {
			line += "   " + note
		}
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	row("requests", count(s.Requests), fmt.Sprintf("%.0f/s", s.RequestsPerSecond))
	note := ""
	if s.ExpectedFailures > 0 {
		note = fmt.Sprintf("+ %s in the attacked session, expected", count(s.ExpectedFailures))
	}
	row("failures", count(s.Failures), note)
	note = ""
	if s.RefreshesAfter401 > 0 {
		note = fmt.Sprintf("%s after a 401", count(s.RefreshesAfter401))
	}
	if s.Adoptions > 0 {
		note = strings.TrimPrefix(note+fmt.Sprintf("; + %s adopted from a shared token file", count(s.Adoptions)), "; ")
	}
	row("refreshes", count(s.Refreshes), note)
	if s.RefreshFailures > 0 {
		row("refreshes failed", count(s.RefreshFailures), "session kept, tried again later")
	}
	if s.LostRefreshAnswers > 0 {
		row("lost refresh answers", count(s.LostRefreshAnswers), "retried with the same refresh token")
	}
	row("grace replays", optional(s.GraceReplays), "server: the same successor for a retried token")
	row("reuse detections", optional(s.ReuseDetections), "server: a rotated token presented after the grace window")
	row("requests replayed after 401", count(s.Replays), "")
	row("requests that waited", count(s.Waits), "for a refresh in flight")
	row("latency p50 / p99", fmt.Sprintf("%s / %s", msText(s.LatencyP50MS), msText(s.LatencyP99MS)), "max "+msText(s.LatencyMaxMS))
	row("longest wait on a refresh", msText(s.LongestWaitMS), "")
	if s.Failovers > 0 {
		row("sent to another replica", count(s.Failovers), "after one could not answer")
	}
	if s.SessionsEnded > 0 {
		row("sessions ended", fmt.Sprint(s.SessionsEnded), fmt.Sprintf("%d unexpectedly", s.UnexpectedSessionsEnded))
	}
	switch {
	case s.ServerMetricsError != "" && s.GraceReplays == nil:
		fmt.Fprintf(&b, "  (server counters unavailable: %s)\n", s.ServerMetricsError)
	case s.ServerMetricsError != "":
		fmt.Fprintf(&b, "  (server counters incomplete: %s)\n", s.ServerMetricsError)
	}
	if len(s.Errors) > 0 {
		b.WriteString("\n  commonest failures\n")
		for _, e := range s.Errors {
			fmt.Fprintf(&b, "  %8s × %s (first at %.1fs, %s)\n", count(e.Count), e.Error, e.FirstAt, e.FirstUser)
		}
	}
	if len(s.Faults) > 0 {
		b.WriteString("\n  faults injected\n")
		for _, f := range s.Faults {
			when := fmt.Sprintf("%5.1fs", f.Start)
			if f.End > f.Start {
				when = fmt.Sprintf("%5.1fs – %.1fs", f.Start, f.End)
			}
			fmt.Fprintf(&b, "  %-16s %s\n", when, f.Name)
		}
	}
	if len(s.Checks) > 0 {
		b.WriteString("\n  checks\n")
		failed := 0
		for _, c := range s.Checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
				failed++
			}
			line := fmt.Sprintf("  %s  %s", mark, c.Name)
			if c.Detail != "" {
				line += ": " + c.Detail
			}
			b.WriteString(line + "\n")
		}
		if failed == 0 {
			b.WriteString("\n  result: OK\n")
		} else {
			fmt.Fprintf(&b, "\n  result: FAILED (%d of %d checks)\n", failed, len(s.Checks))
		}
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("loadgen: summary: %w", err)
	}
	return nil
}

// count writes n with thin groups of three digits: 1 234 567.
func count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func optional(n *int64) string {
	if n == nil {
		return "?"
	}
	return count(*n)
}

func msText(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2f s", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.0f ms", v)
	default:
		return fmt.Sprintf("%.1f ms", v)
	}
}
