package report_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/loadtest/internal/engine"
	"github.com/strata-ref/strata/loadtest/internal/report"
)

// TestReportRendersInChromium renders a real (short) run and loads the file
// in headless Chromium: the DOM it builds must hold all four charts, each
// with drawn series, and a screenshot must not be blank.
func TestReportRendersInChromium(t *testing.T) {
	var n atomic.Int64
	sum := engine.Run(context.Background(), engine.Config{
		Steps: []engine.Step{{Rate: 40, Duration: time.Second, Label: "1x"}, {Rate: 120, Duration: time.Second, Label: "3x"}},
		Target: func(context.Context) engine.Result {
			if n.Add(1)%3 == 0 {
				return engine.Result{Status: 429}
			}
			return engine.Result{Status: 200}
		},
		Sample: func(context.Context) map[string]float64 {
			return map[string]float64{"ledger breaker analytics": float64(n.Load() % 3)}
		},
	})
	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	err = report.Render(f, report.Data{Title: "Strata load test", Scenario: "unit", Started: time.Now().Format(time.RFC3339),
		Machine: "test", Summary: sum, Checks: []report.Check{{Name: "sum of balances is zero", OK: true, Detail: "0"}}})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}

	exe := testenv.Chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append(testenv.ChromiumFlags(filepath.Join(dir, "profile")), "--dump-dom", "file://"+file)
	dom, err := exec.CommandContext(ctx, exe, args...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	for _, id := range []string{"chart-traffic", "chart-latency", "chart-goodput", "chart-breakers"} {
		i := strings.Index(string(dom), `id="`+id+`"`)
		if i < 0 {
			t.Fatalf("chart %s missing from the rendered DOM", id)
		}
		chart := string(dom)[i:]
		chart = chart[:strings.Index(chart, "</svg>")]
		if !strings.Contains(chart, `<polyline`) || strings.Contains(chart, `points=""`) {
			t.Fatalf("chart %s has no drawn series", id)
		}
	}
	shot := filepath.Join(dir, "shot.png")
	if p := os.Getenv("STRATA_KEEP_SCREENSHOT"); p != "" {
		shot = p
	}
	args = append(testenv.ChromiumFlags(filepath.Join(dir, "profile2")), "--screenshot="+shot, "--window-size=1000,1400", "file://"+file)
	if out, err := exec.CommandContext(ctx, exe, args...).CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 20_000 {
		t.Fatalf("screenshot missing or blank: %v", err)
	}
}
