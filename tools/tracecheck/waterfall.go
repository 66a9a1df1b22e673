package tracecheck

import (
	"fmt"
	"html/template"
	"io"
	"sort"
	"time"
)

// Waterfall writes one trace as a self-contained HTML page: a row per span,
// indented under its parent, its bar placed on a common time axis and
// coloured by service, as a trace viewer such as Jaeger draws it. The docs'
// picture of a trace is this page, rendered in headless Chromium by the
// telemetry test from the spans the real services exported.
func Waterfall(w io.Writer, title string, spans []Span) error {
	if len(spans) == 0 {
		return fmt.Errorf("waterfall: no spans")
	}
	byID := map[string]Span{}
	children := map[string][]Span{}
	lo, hi := spans[0].Start, spans[0].End
	for _, s := range spans {
		byID[s.SpanID] = s
		lo, hi = min(lo, s.Start), max(hi, s.End)
	}
	var roots []Span
	for _, s := range spans {
		if _, ok := byID[s.ParentID]; ok {
			children[s.ParentID] = append(children[s.ParentID], s)
		} else {
			roots = append(roots, s)
		}
	}
	byStart := func(ss []Span) { sort.Slice(ss, func(i, j int) bool { return ss[i].Start < ss[j].Start }) }
	byStart(roots)
	total := float64(max(hi-lo, 1))
	type row struct {
		Service, Name, Kind, Duration string
		Depth                         int
		Left, Width                   float64 // percent of the axis
		Colour                        string
	}
	var rows []row
	var walk func(s Span, depth int)
	walk = func(s Span, depth int) {
		rows = append(rows, row{Service: s.Service, Name: s.Name, Kind: kindName(s.Kind), Depth: depth,
			Duration: time.Duration(s.End - s.Start).Round(10 * time.Microsecond).String(),
			Left:     100 * float64(s.Start-lo) / total, Width: max(100*float64(s.End-s.Start)/total, 0.3),
			Colour: serviceColour(s.Service)})
		kids := children[s.SpanID]
		byStart(kids)
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return waterfallPage.Execute(w, map[string]any{"Title": title, "Rows": rows, "Spans": len(spans),
		"Total": time.Duration(hi - lo).Round(10 * time.Microsecond).String(), "TraceID": spans[0].TraceID})
}

func kindName(k interface{ String() string }) string {
	switch k.String() {
	case "SPAN_KIND_SERVER":
		return "server"
	case "SPAN_KIND_CLIENT":
		return "client"
	case "SPAN_KIND_INTERNAL":
		return "internal"
	case "SPAN_KIND_PRODUCER":
		return "producer"
	case "SPAN_KIND_CONSUMER":
		return "consumer"
	}
	return ""
}

func serviceColour(service string) string {
	switch service {
	case "auth":
		return "#8e6bbf"
	case "ledger":
		return "#2f7ed8"
	case "analytics":
		return "#d98b2b"
	case "session":
		return "#3a9e5c"
	case "console":
		return "#c2455b"
	}
	return "#777777"
}

var waterfallPage = template.Must(template.New("waterfall").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 16px; margin: 0 0 4px; }
p { margin: 0 0 12px; color: #555; }
table { border-collapse: collapse; width: 100%; }
td { padding: 2px 6px; border-bottom: 1px solid #eee; white-space: nowrap; }
td.name { width: 38%; overflow: hidden; text-overflow: ellipsis; max-width: 420px; }
td.svc { width: 8%; font-weight: 600; }
td.dur { width: 8%; text-align: right; color: #555; }
td.axis { position: relative; }
.bar { position: absolute; top: 4px; height: 12px; border-radius: 2px; }
</style></head><body>
<h1>{{.Title}}</h1>
<p>trace {{.TraceID}}: {{.Spans}} spans in {{.Total}}</p>
<table id="waterfall">
{{range .Rows}}<tr class="span"><td class="svc" style="color: {{.Colour}}">{{.Service}}</td>
<td class="name" style="padding-left: {{.Depth}}em">{{.Name}} <small>{{.Kind}}</small></td>
<td class="dur">{{.Duration}}</td>
<td class="axis"><div class="bar" style="left: {{printf "%.2f" .Left}}%; width: {{printf "%.2f" .Width}}%; background: {{.Colour}}"></div></td></tr>
{{end}}</table></body></html>
`))
