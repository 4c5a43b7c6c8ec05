package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/silentrefresh/silentrefresh/server"
)

// scrapeOne reads the refresh outcomes of one /metrics URL.
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

// ParseRefreshOutcomes reads the server.MetricRefreshes samples of a
// Prometheus text exposition and sums them by outcome.
func ParseRefreshOutcomes(r io.Reader) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64)
	mf, ok := families[server.MetricRefreshes]
	if !ok {
		return out, nil
	}
	for _, m := range mf.GetMetric() {
		outcome := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == server.LabelOutcome {
				outcome = l.GetValue()
			}
		}
		if outcome == "" {
			return nil, fmt.Errorf("a %s sample without an %s label", server.MetricRefreshes, server.LabelOutcome)
		}
		switch {
		case m.Counter != nil:
			out[outcome] += m.GetCounter().GetValue()
		case m.Untyped != nil:
			out[outcome] += m.GetUntyped().GetValue()
		default:
			return nil, fmt.Errorf("%s is a %s, not a counter", server.MetricRefreshes, mf.GetType())
		}
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
