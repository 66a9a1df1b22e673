// Package report renders a load-test run as one self-contained HTML file:
// inline SVG charts and tables, no scripts or external assets, so it can be
// mailed, archived or opened offline.
//
// Charts: offered vs served vs shed vs refused locally vs failed over time; served latency
// percentiles over time; goodput against offered load per step; and the
// timeline of every gauge sampled from the services (breaker states,
// limiter limits).
package report

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/strata-ref/strata/loadtest/internal/engine"
)

// Data is what the report shows.
type Data struct {
	Title    string
	Scenario string
	Started  string
	Machine  string
	Summary  engine.Summary
	// Checks are the invariant checks run after the scenario.
	Checks []Check
	Notes  []string
}

// Check is one invariant and whether it held.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

type series struct {
	Name  string
	Color string
	Pts   []float64
}

const (
	width, height = 860, 260
	padL, padR    = 60, 140
	padT, padB    = 20, 36
)

var palette = []string{"#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"}

// lineChart draws series over x = 0..n-1 seconds.
func lineChart(id, title, yLabel string, ss []series) template.HTML {
	n := 0
	ymax := 0.0
	for _, s := range ss {
		n = max(n, len(s.Pts))
		for _, v := range s.Pts {
			ymax = math.Max(ymax, v)
		}
	}
	if n < 2 {
		n = 2
	}
	if ymax == 0 {
		ymax = 1
	}
	ymax = niceCeil(ymax)
	x := func(i int) float64 { return padL + float64(i)*float64(width-padL-padR)/float64(n-1) }
	y := func(v float64) float64 { return float64(height-padB) - v/ymax*float64(height-padT-padB) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" class="chart" role="img" aria-label="%s" viewBox="0 0 %d %d" width="%d" height="%d">`, id, template.HTMLEscapeString(title), width, height, width, height)
	fmt.Fprintf(&b, `<text x="%d" y="14" class="title">%s</text>`, padL, template.HTMLEscapeString(title))
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/><text x="%d" y="%.1f" class="axis" text-anchor="end">%s</text>`,
			padL, width-padR, y(v), y(v), padL-6, y(v)+4, short(v))
	}
	for i := 0; i < n; i += max(1, n/10) {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="axis" text-anchor="middle">%ds</text>`, x(i), height-padB+16, i)
	}
	fmt.Fprintf(&b, `<text x="12" y="%d" class="axis" transform="rotate(-90 12 %d)">%s</text>`, height/2, height/2, template.HTMLEscapeString(yLabel))
	for si, s := range ss {
		var pts []string
		for i, v := range s.Pts {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
		}
		fmt.Fprintf(&b, `<polyline class="series" data-series="%s" fill="none" stroke="%s" stroke-width="2" points="%s"/>`,
			template.HTMLEscapeString(s.Name), s.Color, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" class="legend">%s</text>`,
			width-padR+10, padT+si*16, s.Color, width-padR+24, padT+si*16+9, template.HTMLEscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// scatter draws goodput (y) against offered rate (x), one point per step,
// with the ideal y = x line for reference.
func scatter(id, title string, steps []engine.StepSummary) template.HTML {
	xmax := 1.0
	for _, s := range steps {
		xmax = math.Max(xmax, s.OfferedRate)
	}
	xmax = niceCeil(xmax)
	x := func(v float64) float64 { return padL + v/xmax*float64(width-padL-padR) }
	y := func(v float64) float64 { return float64(height-padB) - v/xmax*float64(height-padT-padB) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" class="chart" role="img" aria-label="%s" viewBox="0 0 %d %d" width="%d" height="%d">`, id, template.HTMLEscapeString(title), width, height, width, height)
	fmt.Fprintf(&b, `<text x="%d" y="14" class="title">%s</text>`, padL, template.HTMLEscapeString(title))
	for i := 0; i <= 4; i++ {
		v := xmax * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/><text x="%d" y="%.1f" class="axis" text-anchor="end">%s</text>`,
			padL, width-padR, y(v), y(v), padL-6, y(v)+4, short(v))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="axis" text-anchor="middle">%s</text>`, x(v), height-padB+16, short(v))
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="ideal"/>`, x(0), y(0), x(xmax), y(xmax))
	var pts []string
	for _, s := range steps {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.OfferedRate), y(s.Goodput)))
		fmt.Fprintf(&b, `<circle class="point" cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s: offered %.0f/s, goodput %.0f/s</title></circle>`,
			x(s.OfferedRate), y(s.Goodput), palette[0], template.HTMLEscapeString(s.Label), s.OfferedRate, s.Goodput)
	}
	fmt.Fprintf(&b, `<polyline class="series" data-series="goodput" fill="none" stroke="%s" stroke-width="2" points="%s"/>`, palette[0], strings.Join(pts, " "))
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="axis" text-anchor="middle">offered requests/s</text>`, (width-padR+padL)/2, height-4)
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="legend">— goodput</text><text x="%d" y="%d" class="legend">-- ideal (all served)</text>`,
		width-padR+10, padT+9, width-padR+10, padT+25)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func short(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// Render writes the HTML report.
func Render(w io.Writer, d Data) error {
	secs := d.Summary.Seconds
	col := func(f func(engine.Second) float64) []float64 {
		out := make([]float64, len(secs))
		for i, s := range secs {
			out[i] = f(s)
		}
		return out
	}
	traffic := lineChart("chart-traffic", "Offered vs served vs rejected (requests/s)", "requests/s", []series{
		{"offered", palette[8], col(func(s engine.Second) float64 { return float64(s.Offered) })},
		{"served", palette[1], col(func(s engine.Second) float64 { return float64(s.Served) })},
		{"shed (429)", palette[3], col(func(s engine.Second) float64 { return float64(s.Shed) })},
		{"refused locally", palette[5], col(func(s engine.Second) float64 { return float64(s.Throttled) })},
		{"unavailable (503)", palette[4], col(func(s engine.Second) float64 { return float64(s.Unavailable) })},
		{"failed", palette[2], col(func(s engine.Second) float64 { return float64(s.Failed + s.Dropped) })},
	})
	latency := lineChart("chart-latency", "Latency of served requests over time (ms, from the due time)", "ms", []series{
		{"p50", palette[1], col(func(s engine.Second) float64 { return s.P50 })},
		{"p90", palette[0], col(func(s engine.Second) float64 { return s.P90 })},
		{"p99", palette[2], col(func(s engine.Second) float64 { return s.P99 })},
		{"429 p99", palette[3], col(func(s engine.Second) float64 { return s.ShedP99 })},
	})
	goodput := scatter("chart-goodput", "Goodput against offered load (one point per step)", d.Summary.Steps)

	names := map[string]bool{}
	for _, s := range secs {
		for k := range s.Gauges {
			names[k] = true
		}
	}
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var breakers []series
	for i, k := range keys {
		if !strings.Contains(k, "breaker") {
			continue
		}
		breakers = append(breakers, series{k, palette[i%len(palette)], col(func(s engine.Second) float64 { return s.Gauges[k] })})
	}
	breakerChart := lineChart("chart-breakers", "Circuit breaker state (0 closed, 1 half-open, 2 open)", "state", breakers)

	var buf bytes.Buffer
	err := page.Execute(&buf, map[string]any{"D": d, "Traffic": traffic, "Latency": latency, "Goodput": goodput, "Breakers": breakerChart})
	if err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"f1": func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"f0": func(v float64) string { return fmt.Sprintf("%.0f", v) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.D.Title}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.chart{display:block;margin:.6em 0;background:#fcfcfc;border:1px solid #e5e5e5}
.chart .grid{stroke:#e6e6e6}.chart .axis{font-size:11px;fill:#666}.chart .title{font-size:13px;font-weight:600}
.chart .legend{font-size:11px}.chart .ideal{stroke:#999;stroke-dasharray:4 4}
.ok{color:#2a7a2a;font-weight:600}.bad{color:#b00;font-weight:600}
</style></head><body>
<h1>{{.D.Title}}</h1>
<p>Scenario <b>{{.D.Scenario}}</b>, started {{.D.Started}} on {{.D.Machine}}.
Open-model load: arrivals are scheduled at a constant rate per step and latency is measured from each request's due time, so stalls cannot hide (no coordinated omission).</p>
<h2>Summary</h2>
<table><tr><th>offered</th><th>served</th><th>shed (429)</th><th>refused locally (throttled)</th><th>unavailable (503)</th><th>failed</th><th>dropped by generator</th><th>retried after Retry-After</th><th>p50 ms</th><th>p99 ms</th><th>429 p99 ms</th></tr>
<tr><td>{{.D.Summary.Offered}}</td><td>{{.D.Summary.Served}}</td><td>{{.D.Summary.Shed}}</td><td>{{.D.Summary.Throttled}}</td><td>{{.D.Summary.Unavailable}}</td><td>{{.D.Summary.Failed}}</td><td>{{.D.Summary.Dropped}}</td><td>{{.D.Summary.Retried}}</td><td>{{f1 .D.Summary.P50}}</td><td>{{f1 .D.Summary.P99}}</td><td>{{f1 .D.Summary.ShedP99}}</td></tr></table>
<h2>Steps</h2>
<table><tr><th>step</th><th>offered/s</th><th>goodput/s</th><th>shed/s</th><th>refused locally/s</th><th>p50 ms</th><th>p99 ms</th><th>429 p99 ms</th><th>failed</th></tr>
{{range .D.Summary.Steps}}<tr><td>{{.Label}}</td><td>{{f0 .OfferedRate}}</td><td>{{f0 .Goodput}}</td><td>{{f0 .ShedRate}}</td><td>{{f0 .ThrottledRate}}</td><td>{{f1 .P50}}</td><td>{{f1 .P99}}</td><td>{{f1 .ShedP99}}</td><td>{{.Failed}}</td></tr>
{{end}}</table>
<h2>Traffic</h2>{{.Traffic}}
<h2>Latency</h2>{{.Latency}}
<h2>Goodput</h2>{{.Goodput}}
<h2>Breakers</h2>{{.Breakers}}
<h2>Invariants</h2>
<table><tr><th>check</th><th>result</th><th>detail</th></tr>
{{range .D.Checks}}<tr><td>{{.Name}}</td><td class="{{if .OK}}ok{{else}}bad{{end}}">{{if .OK}}held{{else}}VIOLATED{{end}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>
{{range .D.Notes}}<p>{{.}}</p>{{end}}
</body></html>
`))
