package loadgen

import (
	"bufio"
	"cmp"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Timeline is the picture of a run: users down the side, time across,
// each request a tick, each refresh and each wait on one marked, the
// injected faults shaded. Generator.Timeline makes one from a run; any
// Timeline can be drawn with WriteSVG.
type Timeline struct {
	Title    string
	Subtitle string
	// Duration is the length of the time axis.
	Duration time.Duration
	Rows     []TimelineRow
	Faults   []TimelineFault
	// HiddenRows counts users left out of Rows.
	HiddenRows int
}

// TimelineFault is a shaded interval (End == Start for an instant).
type TimelineFault struct {
	Name       string
	Start, End time.Duration
}

// TimelineRow is one user. All times are since the start of the run.
type TimelineRow struct {
	Label string
	// Note is shown after the label, e.g. "attacked".
	Note      string
	Requests  []Tick
	Refreshes []TimelineRefresh
	Waits     []Span
	// Lost are the moments refresh requests got no answer.
	Lost []time.Duration
	// Ended is set when the session ended, at EndedAt; Expected when it
	// was expected to (an attacked session). EndNote is written beside it.
	Ended    bool
	Expected bool
	EndedAt  time.Duration
	EndNote  string
}

// Tick is one request, at the time it was sent.
type Tick struct {
	At     time.Duration
	Failed bool
}

// Span is an interval.
type Span struct {
	Start, End time.Duration
}

// TimelineRefresh is one refresh.
type TimelineRefresh struct {
	Span
	Kind RefreshKind
}

// Timeline returns the picture of the last Run, with at most maxRows users
// (zero means 64); the first users are drawn.
func (g *Generator) Timeline(title, subtitle string, maxRows int) Timeline {
	if maxRows <= 0 {
		maxRows = 64
	}
	start, end := g.Started(), g.finished()
	if end.IsZero() {
		end = time.Now()
	}
	tl := Timeline{Title: title, Subtitle: subtitle, Duration: max(end.Sub(start), g.cfg.Duration)}
	g.mu.Lock()
	for _, f := range g.faults {
		tl.Faults = append(tl.Faults, TimelineFault{Name: f.name, Start: f.start.Sub(start), End: f.end.Sub(start)})
	}
	g.mu.Unlock()
	for i, u := range g.users {
		if i >= maxRows {
			tl.HiddenRows = len(g.users) - maxRows
			break
		}
		row := TimelineRow{Label: u.Username, Expected: u.expectEnd.Load()}
		for _, w := range u.workers {
			for _, s := range w.samples {
				row.Requests = append(row.Requests, Tick{At: s.at, Failed: s.flags&flagFailed != 0})
			}
		}
		u.mu.Lock()
		row.Note = u.note
		row.Refreshes = slices.Clone(u.refreshLog)
		row.Waits = slices.Clone(u.waitLog)
		row.Lost = slices.Clone(u.lostLog)
		if !u.endedAt.IsZero() {
			row.Ended, row.EndedAt = true, u.endedAt.Sub(start)
			row.EndNote = "session ended: ErrReauthRequired"
		}
		u.mu.Unlock()
		tl.Rows = append(tl.Rows, row)
	}
	return tl
}

// Colours of the timeline.
const (
	colTick      = "#94a3b8"
	colFailed    = "#dc2626"
	colWait      = "#f59e0b"
	colProactive = "#2563eb"
	colReactive  = "#7c3aed"
	colAdopted   = "#0d9488"
	colEnded     = "#991b1b"
	colText      = "#1f2937"
	colMuted     = "#6b7280"
	colGrid      = "#e5e7eb"
	colStripe    = "#f5f6f8"
)

// faultColors are the fills of faults, in turn, with their text colours.
var faultColors = [][2]string{
	{"#fde68a", "#92400e"},
	{"#fecaca", "#991b1b"},
	{"#c7d2fe", "#3730a3"},
	{"#bbf7d0", "#166534"},
	{"#fbcfe8", "#9d174d"},
}

// layout holds the geometry of one drawing.
type layout struct {
	width, x0, x1 float64
	y0, rowH      float64
	dur           time.Duration
}

func (l layout) x(d time.Duration) float64 {
	if l.dur <= 0 {
		return l.x0
	}
	f := float64(d) / float64(l.dur)
	return l.x0 + min(max(f, 0), 1)*(l.x1-l.x0)
}

func (l layout) rowTop(i int) float64 { return l.y0 + float64(i)*l.rowH }

// f formats a coordinate: at most one decimal, no trailing zero.
func f(v float64) string {
	s := strconv.FormatFloat(math.Round(v*10)/10, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	if s == "-0" {
		s = "0"
	}
	return s
}

// WriteSVG draws t as a standalone SVG document.
func (t Timeline) WriteSVG(w io.Writer) error {
	bw := bufio.NewWriter(w)
	t.draw(bw)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("loadgen: timeline: %w", err)
	}
	return nil
}

func (t Timeline) draw(w *bufio.Writer) {
	const (
		width   = 1200.0
		labelW  = 190.0
		marginR = 28.0
		fontSz  = 11.0
	)
	n := len(t.Rows)
	rowH := 16.0
	if n > 0 {
		rowH = min(max(math.Floor(560/float64(n)), 5), 18)
	}
	l := layout{width: width, x0: labelW, x1: width - marginR, rowH: rowH, dur: t.Duration}

	// Fault labels go in lanes above the plot, so that they do not overlap.
	type placed struct {
		f     TimelineFault
		color [2]string
		lane  int
	}
	var faults []placed
	var laneEnds []float64
	for i, fl := range t.Faults {
		x := l.x(fl.Start)
		wText := float64(len([]rune(fl.Name)))*6.3 + 10
		lane := -1
		for j, e := range laneEnds {
			if x >= e {
				lane = j
				break
			}
		}
		if lane < 0 {
			lane = len(laneEnds)
			laneEnds = append(laneEnds, 0)
		}
		laneEnds[lane] = x + wText
		faults = append(faults, placed{f: fl, color: faultColors[i%len(faultColors)], lane: lane})
	}
	subtitle := wrap(t.Subtitle, 180) // about the width at 12px
	top := 46 + 18*float64(len(subtitle))
	l.y0 = top + float64(len(laneEnds))*15 + 8
	plotBottom := l.y0 + float64(n)*rowH
	axisY := plotBottom + 4
	legendY := axisY + 40
	legend := legendItems()
	legendRows := layoutLegend(legend, l.x0-labelW+16, width-marginR)
	height := legendY + float64(legendRows)*20 + 16
	if t.HiddenRows > 0 {
		height += 18
	}

	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="%s">`+"\n",
		f(width), f(height), f(width), f(height), f(fontSz))
	fmt.Fprintf(w, "<title>%s</title>\n", esc(t.Title))
	fmt.Fprintf(w, `<rect width="%s" height="%s" fill="#ffffff"/>`+"\n", f(width), f(height))
	fmt.Fprintf(w, `<text x="16" y="28" font-size="18" font-weight="600" fill="%s">%s</text>`+"\n", colText, esc(t.Title))
	for i, line := range subtitle {
		fmt.Fprintf(w, `<text x="16" y="%s" font-size="12" fill="%s">%s</text>`+"\n", f(48+16*float64(i)), colMuted, esc(line))
	}

	// Row stripes and the time grid, under everything.
	w.WriteString(`<g id="rows">` + "\n")
	for i := range n {
		if i%2 == 1 {
			fmt.Fprintf(w, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"/>`+"\n",
				f(l.x0), f(l.rowTop(i)), f(l.x1-l.x0), f(rowH), colStripe)
		}
	}
	w.WriteString("</g>\n")
	step := axisStep(t.Duration, l.x1-l.x0)
	w.WriteString(`<g id="grid" stroke="` + colGrid + `" stroke-width="1">` + "\n")
	for d := time.Duration(0); d <= t.Duration; d += step {
		fmt.Fprintf(w, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", f(l.x(d)), f(l.y0), f(l.x(d)), f(plotBottom))
	}
	w.WriteString("</g>\n")

	// Faults: shaded bands with their names above the plot.
	w.WriteString(`<g id="faults">` + "\n")
	for _, p := range faults {
		xs, xe := l.x(p.f.Start), l.x(p.f.End)
		if xe-xs < 4 {
			xe = xs + 4
		}
		labelY := top + float64(p.lane)*15 + 10
		fmt.Fprintf(w, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s" fill-opacity="0.55"><title>%s</title></rect>`+"\n",
			f(xs), f(labelY-10), f(xe-xs), f(plotBottom-labelY+10), p.color[0], esc(p.f.Name))
		fmt.Fprintf(w, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1" stroke-dasharray="3 2"/>`+"\n",
			f(xs), f(labelY-10), f(xs), f(plotBottom), p.color[1])
		fmt.Fprintf(w, `<text x="%s" y="%s" fill="%s" font-weight="600">%s</text>`+"\n", f(xs+4), f(labelY), p.color[1], esc(p.f.Name))
	}
	w.WriteString("</g>\n")

	// Labels.
	labelSize := min(fontSz, rowH-1)
	w.WriteString(`<g id="labels" text-anchor="end" font-size="` + f(labelSize) + `">` + "\n")
	for i, r := range t.Rows {
		y := l.rowTop(i) + rowH/2 + labelSize*0.35
		label := esc(truncate(r.Label, 24))
		if r.Note != "" {
			label += fmt.Sprintf(` <tspan fill="%s" font-weight="600">· %s</tspan>`, noteColor(r), esc(truncate(r.Note, 22)))
		}
		fmt.Fprintf(w, `<text x="%s" y="%s" fill="%s">%s</text>`+"\n", f(l.x0-8), f(y), colText, label)
	}
	w.WriteString("</g>\n")

	t.drawTicks(w, l)
	t.drawMarks(w, l)

	// The time axis.
	fmt.Fprintf(w, `<g id="axis" fill="%s" font-size="10" text-anchor="middle">`+"\n", colMuted)
	fmt.Fprintf(w, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n", f(l.x0), f(axisY), f(l.x1), f(axisY), colMuted)
	for d := time.Duration(0); d <= t.Duration; d += step {
		x := l.x(d)
		fmt.Fprintf(w, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n", f(x), f(axisY), f(x), f(axisY+4), colMuted)
		fmt.Fprintf(w, `<text x="%s" y="%s">%s</text>`+"\n", f(x), f(axisY+16), axisLabel(d))
	}
	fmt.Fprintf(w, `<text x="%s" y="%s" text-anchor="end">time since start →</text>`+"\n", f(l.x0-8), f(axisY+16))
	w.WriteString("</g>\n")

	// The legend.
	w.WriteString(`<g id="legend" font-size="11">` + "\n")
	x, y := l.x0-labelW+16, legendY
	for _, it := range legend {
		wItem := it.width()
		if x+wItem > width-marginR {
			x, y = l.x0-labelW+16, y+20
		}
		it.draw(w, x, y)
		x += wItem
	}
	if t.HiddenRows > 0 {
		fmt.Fprintf(w, `<text x="%s" y="%s" fill="%s">… and %d more users, not drawn</text>`+"\n", f(l.x0-labelW+16), f(y+26), colMuted, t.HiddenRows)
	}
	w.WriteString("</g>\n</svg>\n")
}

func noteColor(r TimelineRow) string {
	if r.Ended || r.Expected {
		return colEnded
	}
	return colAdopted
}

// drawTicks draws the requests: one tick per 2-pixel column of a row that
// sent any, as tall as the column's share of the busiest columns.
func (t Timeline) drawTicks(w *bufio.Writer, l layout) {
	const binW = 2.0
	bins := int(math.Ceil((l.x1 - l.x0) / binW))
	counts := make([][]int, len(t.Rows))
	failed := make([][]bool, len(t.Rows))
	var nonzero []int
	for i, r := range t.Rows {
		counts[i] = make([]int, bins)
		failed[i] = make([]bool, bins)
		for _, tk := range r.Requests {
			b := min(int((l.x(tk.At)-l.x0)/binW), bins-1)
			if tk.Failed {
				failed[i][b] = true
			} else {
				counts[i][b]++
			}
		}
		for _, c := range counts[i] {
			if c > 0 {
				nonzero = append(nonzero, c)
			}
		}
	}
	// Scale to the 90th percentile of busy columns, so that one outlier
	// does not flatten the rest.
	slices.Sort(nonzero)
	scale := 1
	if len(nonzero) > 0 {
		scale = max(nonzero[min(len(nonzero)*9/10, len(nonzero)-1)], 1)
	}
	var ok, bad strings.Builder
	for i := range t.Rows {
		base := l.rowTop(i) + l.rowH - 1
		full := l.rowH * 0.72
		for b := range bins {
			x := l.x0 + float64(b)*binW + 0.5
			if c := counts[i][b]; c > 0 {
				h := full * (0.3 + 0.7*min(float64(c)/float64(scale), 1))
				fmt.Fprintf(&ok, "M%s %sv-%s", f(x), f(base), f(h))
			}
			if failed[i][b] {
				fmt.Fprintf(&bad, "M%s %sv-%s", f(x), f(base), f(l.rowH-2))
			}
		}
	}
	if ok.Len() > 0 {
		fmt.Fprintf(w, `<path id="requests" d="%s" stroke="%s" stroke-width="1" fill="none"/>`+"\n", ok.String(), colTick)
	}
	if bad.Len() > 0 {
		fmt.Fprintf(w, `<path id="failed" d="%s" stroke="%s" stroke-width="1.5" fill="none"/>`+"\n", bad.String(), colFailed)
	}
}

// drawMarks draws waits, refreshes, lost answers and ended sessions.
func (t Timeline) drawMarks(w *bufio.Writer, l layout) {
	w.WriteString(`<g id="refreshes">` + "\n")
	for i, r := range t.Rows {
		y, h := l.rowTop(i)+1, l.rowH-2
		refs := slices.Clone(r.Refreshes)
		slices.SortStableFunc(refs, func(a, b TimelineRefresh) int { return cmp.Compare(a.Start, b.Start) })
		for _, rf := range refs {
			xs, xe := l.x(rf.Start), l.x(rf.End)
			wd := max(xe-xs, 2.5)
			switch rf.Kind {
			case RefreshAdopted:
				fmt.Fprintf(w, `<rect x="%s" y="%s" width="%s" height="%s" fill="#ffffff" stroke="%s" stroke-width="1.2"/>`+"\n",
					f(xs), f(y+0.6), f(max(wd, 3)), f(h-1.2), colAdopted)
			case RefreshFailed:
				fmt.Fprintf(w, `<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="%s" stroke-width="1.2"/>`+"\n",
					f(xs), f(y+0.6), f(max(wd, 3)), f(h-1.2), colFailed)
			case RefreshEnded:
				fmt.Fprintf(w, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"/>`+"\n", f(xs), f(y), f(wd), f(h), colEnded)
			case RefreshReactive:
				fmt.Fprintf(w, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"/>`+"\n", f(xs), f(y), f(wd), f(h), colReactive)
			default:
				fmt.Fprintf(w, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"/>`+"\n", f(xs), f(y), f(wd), f(h), colProactive)
			}
		}
	}
	w.WriteString("</g>\n")

	// Waits go over the refreshes they wait for, thinner, so that both show.
	w.WriteString(`<g id="waits" fill="` + colWait + `">` + "\n")
	for i, r := range t.Rows {
		y, h := l.rowTop(i)+l.rowH*0.3, l.rowH*0.4
		for _, s := range mergeSpans(r.Waits) {
			xs, xe := l.x(s.Start), l.x(s.End)
			fmt.Fprintf(w, `<rect x="%s" y="%s" width="%s" height="%s"/>`+"\n", f(xs), f(y), f(max(xe-xs, 2)), f(h))
		}
	}
	w.WriteString("</g>\n")

	w.WriteString(`<g id="lost" stroke="` + colFailed + `" stroke-width="1.6" fill="none">` + "\n")
	for i, r := range t.Rows {
		cy := l.rowTop(i) + l.rowH/2
		s := min(l.rowH*0.32, 4)
		for _, at := range r.Lost {
			x := l.x(at)
			fmt.Fprintf(w, `<path d="M%s %sl%s %sm0 -%sl-%s %s"/>`+"\n",
				f(x-s), f(cy-s), f(2*s), f(2*s), f(2*s), f(2*s), f(2*s))
		}
	}
	w.WriteString("</g>\n")

	w.WriteString(`<g id="ended">` + "\n")
	for i, r := range t.Rows {
		if !r.Ended {
			continue
		}
		x := l.x(r.EndedAt)
		top := l.rowTop(i)
		fmt.Fprintf(w, `<rect x="%s" y="%s" width="%s" height="%s" fill="#ffffff" fill-opacity="0.7"/>`+"\n",
			f(x), f(top), f(max(l.x1-x, 0)), f(l.rowH))
		fmt.Fprintf(w, `<circle cx="%s" cy="%s" r="%s" fill="%s"/>`+"\n", f(x), f(top+l.rowH/2), f(min(l.rowH*0.38, 5)), colEnded)
		note := r.EndNote
		if !r.Expected {
			note = strings.TrimSpace(note + " (unexpected)")
		}
		if note != "" && l.rowH >= 8 {
			sz := min(10, l.rowH-1)
			anchor, tx := "start", x+8
			if l.x1-x < float64(len([]rune(note)))*sz*0.55+12 {
				anchor, tx = "end", x-8
			}
			// A white halo keeps the note readable over the ticks.
			fmt.Fprintf(w, `<text x="%s" y="%s" font-size="%s" font-weight="600" fill="%s" stroke="#ffffff" stroke-width="3" paint-order="stroke" text-anchor="%s">%s</text>`+"\n",
				f(tx), f(top+l.rowH/2+sz*0.35), f(sz), colEnded, anchor, esc(note))
		}
	}
	w.WriteString("</g>\n")
}

// mergeSpans merges overlapping spans (the waits of several workers on
// one refresh).
func mergeSpans(in []Span) []Span {
	if len(in) == 0 {
		return nil
	}
	s := slices.Clone(in)
	slices.SortFunc(s, func(a, b Span) int { return cmp.Compare(a.Start, b.Start) })
	out := []Span{s[0]}
	for _, sp := range s[1:] {
		last := &out[len(out)-1]
		if sp.Start <= last.End {
			last.End = max(last.End, sp.End)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// axisStep is the spacing of the time axis's ticks: a round number that
// leaves at least 60 pixels between labels.
func axisStep(d time.Duration, px float64) time.Duration {
	steps := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour}
	if d <= 0 {
		return time.Second
	}
	for _, s := range steps {
		if px/(float64(d)/float64(s)) >= 60 {
			return s
		}
	}
	return 2 * time.Hour
}

func axisLabel(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", d/time.Minute, (d%time.Minute)/time.Second)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	default:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
}

// legendItem is one entry of the legend.
type legendItem struct {
	label string
	mark  string // SVG drawn with its origin at the item's left, middle
}

func (it legendItem) width() float64 { return 26 + float64(len([]rune(it.label)))*6.1 + 18 }

func (it legendItem) draw(w *bufio.Writer, x, y float64) {
	fmt.Fprintf(w, `<g transform="translate(%s %s)">%s<text x="24" y="4" fill="%s">%s</text></g>`+"\n",
		f(x), f(y), it.mark, colText, esc(it.label))
}

func legendItems() []legendItem {
	return []legendItem{
		{"requests (taller: more)", `<path d="M2 6v-9M6 6v-12M10 6v-6M14 6v-10" stroke="` + colTick + `"/>`},
		{"failed request", `<path d="M8 6v-12" stroke="` + colFailed + `" stroke-width="1.5"/>`},
		{"requests waiting for a refresh", `<rect x="0" y="-3" width="18" height="6" fill="` + colWait + `"/>`},
		{"refresh, proactive", `<rect x="6" y="-6" width="4" height="12" fill="` + colProactive + `"/>`},
		{"refresh after a 401", `<rect x="6" y="-6" width="4" height="12" fill="` + colReactive + `"/>`},
		{"refresh adopted from the shared file", `<rect x="5" y="-5.5" width="6" height="11" fill="#ffffff" stroke="` + colAdopted + `" stroke-width="1.2"/>`},
		{"refresh answer lost", `<path d="M4 -4l8 8m0 -8l-8 8" stroke="` + colFailed + `" stroke-width="1.6"/>`},
		{"session ended", `<circle cx="8" cy="0" r="5" fill="` + colEnded + `"/>`},
		{"injected fault", `<rect x="0" y="-6" width="18" height="12" fill="` + faultColors[0][0] + `"/>`},
	}
}

// layoutLegend returns how many lines the legend takes between x0 and x1.
func layoutLegend(items []legendItem, x0, x1 float64) int {
	lines, x := 1, x0
	for _, it := range items {
		if x+it.width() > x1 {
			lines++
			x = x0
		}
		x += it.width()
	}
	return lines
}

func esc(s string) string { return html.EscapeString(s) }

// wrap splits s into lines of at most n runes, at " · " separators or
// spaces where it can.
func wrap(s string, n int) []string {
	var lines []string
	for s != "" {
		r := []rune(s)
		if len(r) <= n {
			lines = append(lines, s)
			break
		}
		head := string(r[:n])
		cut := strings.LastIndex(head, " · ")
		skip := len(" · ")
		if cut <= 0 {
			cut, skip = strings.LastIndex(head, " "), 1
		}
		if cut <= 0 {
			cut, skip = len(head), 0
		}
		lines = append(lines, s[:cut])
		s = s[cut+skip:]
	}
	return lines
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
