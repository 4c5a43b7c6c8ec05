package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// refreshMetric is the server's counter of refresh outcomes.
const refreshMetric = "silentrefresh_refresh_total"

// ScrapeRefreshOutcomes reads silentrefresh_refresh_total{outcome=...}
// from the /metrics endpoint of each base URL and returns the counts by
// outcome ("rotated", "grace_replay", "reused", ...), summed over the
// replicas.
func ScrapeRefreshOutcomes(ctx context.Context, hc *http.Client, baseURLs []string) (map[string]float64, error) {
	sum := make(map[string]float64)
	var errs []error
	for _, base := range baseURLs {
		m, err := scrapeOne(ctx, hc, strings.TrimRight(base, "/")+"/metrics")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for k, v := range m {
			sum[k] += v
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return sum, nil
}

func scrapeOne(ctx context.Context, hc *http.Client, u string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("loadgen: metrics: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("loadgen: metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("loadgen: metrics: GET %s: HTTP %d", u, resp.StatusCode)
	}
	m, err := ParseRefreshOutcomes(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("loadgen: metrics: GET %s: %w", u, err)
	}
	return m, nil
}

// ParseRefreshOutcomes reads the silentrefresh_refresh_total samples of a
// Prometheus text exposition.
func ParseRefreshOutcomes(r io.Reader) (map[string]float64, error) {
	out := make(map[string]float64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, refreshMetric+"{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "}")
		if !ok {
			return nil, fmt.Errorf("malformed sample %q", line)
		}
		outcome := ""
		for _, l := range strings.Split(labels, ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), `outcome="`); ok {
				outcome = strings.TrimSuffix(v, `"`)
			}
		}
		fields := strings.Fields(value)
		if outcome == "" || len(fields) == 0 {
			return nil, fmt.Errorf("malformed sample %q", line)
		}
		f, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("malformed sample %q: %w", line, err)
		}
		out[outcome] += f
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// scrapeEach reads the refresh counters of each replica it can, by base
// URL, with the workers' transport; the error names the others.
func (g *Generator) scrapeEach(ctx context.Context) (map[string]map[string]float64, error) {
	hc := &http.Client{Transport: g.transport}
	out := make(map[string]map[string]float64)
	var errs []error
	for _, u := range g.urls {
		base := u.String()
		m, err := scrapeOne(ctx, hc, base+"/metrics")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[base] = m
	}
	return out, errors.Join(errs...)
}

// counterDelta sums, over the replicas read after the run, how much each
// counter grew since before it. A replica restarted meanwhile (a counter
// went down) counts from zero; one not read before counts in full.
func counterDelta(before, after map[string]map[string]float64) map[string]int64 {
	out := make(map[string]int64)
	for base, a := range after {
		b := before[base]
		restarted := false
		for k, v := range a {
			if v < b[k] {
				restarted = true
			}
		}
		for k, v := range a {
			d := v
			if !restarted {
				d -= b[k]
			}
			if n := int64(math.Round(d)); n != 0 {
				out[k] += n
			}
		}
	}
	return out
}
