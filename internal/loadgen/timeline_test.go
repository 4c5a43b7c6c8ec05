package loadgen

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// parseSVG fails unless b is well-formed XML with an svg root, and returns
// how many elements of each name it holds.
func parseSVG(t *testing.T, b []byte) map[string]int {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	counts := map[string]int{}
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
				if se.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q", se.Name.Space)
				}
			}
			counts[se.Name.Local]++
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return counts
}

func msec(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// sampleTimeline has one of everything, on a fixed clock.
func sampleTimeline() Timeline {
	tl := Timeline{
		Title:    "silentrefresh demo: 3 users × 2 workers",
		Subtitle: "a fixed sample <with> & escapes",
		Duration: 6 * time.Second,
		Faults: []TimelineFault{
			{Name: "signing key dropped", Start: msec(1500), End: msec(1500)},
			{Name: "refresh answers lost", Start: msec(2400), End: msec(3900)},
			{Name: "stolen refresh token replayed", Start: msec(4200), End: msec(4200)},
		},
	}
	for u := range 3 {
		var row TimelineRow
		row.Label = []string{"user-01", "user-02", "user-03 <&>"}[u]
		for i := range 120 {
			row.Requests = append(row.Requests, Tick{At: msec(i*50 + u*7)})
		}
		row.Refreshes = []TimelineRefresh{
			{Span: Span{msec(800 + u*30), msec(830 + u*30)}, Kind: RefreshProactive},
			{Span: Span{msec(1510), msec(1560)}, Kind: RefreshReactive},
			{Span: Span{msec(2600), msec(2640)}, Kind: RefreshProactive},
		}
		row.Waits = []Span{{msec(1505), msec(1560)}, {msec(1520), msec(1561)}}
		row.Lost = []time.Duration{msec(2610)}
		tl.Rows = append(tl.Rows, row)
	}
	tl.Rows[0].Note, tl.Rows[0].Expected = "attacked", true
	tl.Rows[0].Ended, tl.Rows[0].EndedAt = true, msec(4230)
	tl.Rows[0].EndNote = "reuse detected: session revoked → ErrReauthRequired"
	tl.Rows[0].Requests = append(tl.Rows[0].Requests, Tick{At: msec(4225), Failed: true})
	tl.Rows[1].Note = "2 processes, 1 file"
	tl.Rows[1].Refreshes = append(tl.Rows[1].Refreshes, TimelineRefresh{Span: Span{msec(3500), msec(3501)}, Kind: RefreshAdopted})
	tl.Rows[2].Refreshes = append(tl.Rows[2].Refreshes, TimelineRefresh{Span: Span{msec(5000), msec(5200)}, Kind: RefreshFailed})
	tl.HiddenRows = 2
	return tl
}

func TestTimelineGolden(t *testing.T) {
	var b bytes.Buffer
	if err := sampleTimeline().WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	counts := parseSVG(t, b.Bytes())
	golden(t, "timeline.golden.svg", b.Bytes())
	if counts["circle"] != 1+1 { // the ended session and its legend entry
		t.Errorf("%d circles, want 2", counts["circle"])
	}
	for _, id := range []string{`id="requests"`, `id="failed"`, `id="waits"`, `id="refreshes"`, `id="lost"`, `id="faults"`, `id="legend"`} {
		if !bytes.Contains(b.Bytes(), []byte(id)) {
			t.Errorf("SVG lacks %s", id)
		}
	}
	for _, text := range []string{"user-03 &lt;&amp;&gt;", "a fixed sample &lt;with&gt; &amp; escapes", "and 2 more users"} {
		if !bytes.Contains(b.Bytes(), []byte(text)) {
			t.Errorf("SVG lacks %q", text)
		}
	}
}

// Edge cases still draw a well-formed document.
func TestTimelineEdgeCases(t *testing.T) {
	many := Timeline{Title: "many", Duration: 3 * time.Minute}
	for range 300 {
		many.Rows = append(many.Rows, TimelineRow{Label: strings.Repeat("long-name-", 5), Requests: []Tick{{At: time.Minute}}})
	}
	tests := map[string]Timeline{
		"empty":       {},
		"no duration": {Title: "x", Rows: []TimelineRow{{Label: "a", Requests: []Tick{{At: time.Second}}}}},
		"out of range": {Duration: time.Second, Rows: []TimelineRow{{Label: "a",
			Requests: []Tick{{At: -time.Second}, {At: time.Hour}}, Lost: []time.Duration{time.Hour},
			Ended: true, EndedAt: time.Hour}}},
		"many rows": many,
	}
	for name, tl := range tests {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tl.WriteSVG(&b); err != nil {
				t.Fatal(err)
			}
			parseSVG(t, b.Bytes())
			if bytes.Contains(b.Bytes(), []byte("NaN")) || bytes.Contains(b.Bytes(), []byte("Inf")) {
				t.Errorf("coordinates not finite")
			}
		})
	}
}

func TestMergeSpans(t *testing.T) {
	got := mergeSpans([]Span{{msec(5), msec(9)}, {msec(1), msec(3)}, {msec(2), msec(4)}, {msec(9), msec(10)}, {msec(20), msec(21)}})
	want := []Span{{msec(1), msec(4)}, {msec(5), msec(10)}, {msec(20), msec(21)}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %v, want %v", got, want)
		}
	}
}

func TestAxis(t *testing.T) {
	tests := []struct {
		d, want time.Duration
	}{
		{6 * time.Second, 500 * time.Millisecond},
		{20 * time.Second, 2 * time.Second},
		{5 * time.Minute, 30 * time.Second},
		{0, time.Second},
	}
	for _, tt := range tests {
		if got := axisStep(tt.d, 980); got != tt.want {
			t.Errorf("axisStep(%v) = %v, want %v", tt.d, got, tt.want)
		}
	}
	labels := map[time.Duration]string{0: "0", msec(500): "0.5s", 2 * time.Second: "2s", 2 * time.Minute: "2m", 90 * time.Second: "1m30s"}
	for d, want := range labels {
		if got := axisLabel(d); got != want {
			t.Errorf("axisLabel(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestWrap(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want []string
	}{
		{"", 10, nil},
		{"short", 10, []string{"short"}},
		{"aaa · bbb · ccc", 12, []string{"aaa · bbb", "ccc"}},
		{"aaa · bbb · ccc", 10, []string{"aaa", "bbb · ccc"}},
		{"one two three", 8, []string{"one two", "three"}},
		{"abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
	}
	for _, tt := range tests {
		got := wrap(tt.in, tt.n)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("wrap(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
