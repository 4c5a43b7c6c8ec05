package loadgen

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Snapshot is the live state of a Run.
type Snapshot struct {
	Elapsed          time.Duration
	Requests         int64
	Failures         int64
	ExpectedFailures int64
	Refreshes        int64
	Adoptions        int64
	Waits            int64
	Waiting          int64 // requests waiting for a refresh right now
	Lost             int64
	Phase            string
}

// Snapshot returns the counters now.
func (g *Generator) Snapshot() Snapshot {
	var el time.Duration
	if start := g.Started(); !start.IsZero() {
		el = min(time.Since(start), g.cfg.Duration)
		if end := g.finished(); !end.IsZero() {
			el = end.Sub(start)
		}
	}
	return Snapshot{
		Elapsed:          el,
		Requests:         g.requests.Load(),
		Failures:         g.failures.Load(),
		ExpectedFailures: g.expected.Load(),
		Refreshes:        g.refreshes.Load(),
		Adoptions:        g.adoptions.Load(),
		Waits:            g.waits.Load(),
		Waiting:          max(g.waiting.Load(), 0),
		Lost:             g.lost.Load(),
		Phase:            *g.phase.Load(),
	}
}

// Progress is the live view of a Generator: on a terminal, one status line
// redrawn in place with a progress bar; elsewhere, a plain line every few
// seconds. Notes (Generator.Notef) are printed as lines of their own.
type Progress struct {
	g     *Generator
	tty   bool
	every time.Duration

	mu       sync.Mutex // guards w, drawn and the rate's state
	w        io.Writer
	drawn    bool // a status line is on screen (terminal only)
	lastReq  int64
	lastTime time.Duration
}

// Watch shows the live view on w until ctx is done, then draws the last
// status line. tty chooses the terminal view (the caller knows whether w is one). Start it
// before Run, in its own goroutine.
func (g *Generator) Watch(ctx context.Context, w io.Writer, tty bool) {
	p := &Progress{g: g, w: w, tty: tty, every: 2 * time.Second}
	if tty {
		p.every = 200 * time.Millisecond
	}
	g.progress.Store(p)
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			p.status(true)
			return
		case <-t.C:
			if !g.Started().IsZero() {
				p.status(false)
			}
		}
	}
}

// status draws the status line; final ends it with a newline.
func (p *Progress) status(final bool) {
	s := p.g.Snapshot()
	p.mu.Lock()
	defer p.mu.Unlock()
	if final && !p.tty && s.Requests == p.lastReq && p.lastTime > 0 {
		return // the last line is still true
	}
	dt := s.Elapsed - p.lastTime
	rate := 0.0
	if dt > 0 {
		rate = float64(s.Requests-p.lastReq) / dt.Seconds()
	}
	if final && s.Elapsed > 0 {
		rate = float64(s.Requests) / s.Elapsed.Seconds()
	}
	p.lastReq, p.lastTime = s.Requests, s.Elapsed
	fails := fmt.Sprintf("%d failed", s.Failures)
	if s.ExpectedFailures > 0 {
		fails += fmt.Sprintf(" (+%d expected)", s.ExpectedFailures)
	}
	phase := ""
	if s.Phase != "" {
		phase = " │ " + s.Phase
	}
	if p.tty {
		frac := 0.0
		if d := p.g.cfg.Duration; d > 0 {
			frac = min(float64(s.Elapsed)/float64(d), 1)
		}
		line := fmt.Sprintf("%5.1fs %s %s req %6.0f/s  %s refreshes  %3d waiting  %s waits  %s%s",
			s.Elapsed.Seconds(), bar(frac, 16), count(s.Requests), rate, count(s.Refreshes), s.Waiting, count(s.Waits), fails, phase)
		fmt.Fprint(p.w, "\r\x1b[2K"+line)
		p.drawn = true
		if final {
			fmt.Fprint(p.w, "\n")
			p.drawn = false
		}
		return
	}
	fmt.Fprintf(p.w, "%6.1fs  requests %d (%.0f/s)  refreshes %d  waits %d  %s%s\n",
		s.Elapsed.Seconds(), s.Requests, rate, s.Refreshes, s.Waits, fails, strings.ReplaceAll(phase, "│", "|"))
}

// note prints one line of news.
func (p *Progress) note(at time.Duration, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\x1b[2K")
		p.drawn = false
	}
	fmt.Fprintf(p.w, "%6.1fs  %s\n", at.Seconds(), msg)
}

// bar draws a progress bar of width cells, frac full.
func bar(frac float64, width int) string {
	const parts = " ▏▎▍▌▋▊▉█"
	runes := []rune(parts)
	eighths := int(frac * float64(width*8))
	var b strings.Builder
	b.WriteString("▕")
	for i := range width {
		n := min(max(eighths-i*8, 0), 8)
		b.WriteRune(runes[n])
	}
	b.WriteString("▏")
	return b.String()
}
