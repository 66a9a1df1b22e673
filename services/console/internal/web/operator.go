package web

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/services/console/internal/operator"
)

// Operator is what the admin's operator view uses; Faults and Load are nil
// outside dev.
type Operator struct {
	Scraper *operator.Scraper
	Faults  *operator.Faults
	Load    *operator.LoadRunner
}

func (p *Pages) registerOperator(r gin.IRouter) {
	a := r.Group("/admin", p.requireRole("admin"))
	a.GET("", p.operatorPage)
	a.GET("/events", p.operatorEvents)
	a.POST("/faults", p.setFault)
	a.POST("/load/start", p.startLoad)
	a.POST("/load/stop", p.stopLoad)
}

func (p *Pages) requireRole(role string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !session(c).User.HasRole(role) {
			p.render(c, http.StatusForbidden, "message", p.view(c, "Refused", "This page is for the "+role+" role."))
			c.Abort()
			return
		}
		c.Next()
	}
}

type operatorData struct {
	Snapshot  operator.Snapshot
	Dev       bool
	Services  []string
	Active    []operator.Active
	Scenarios []string
	Run       operator.LoadRun
	Lines     string
}

func (p *Pages) operatorData() operatorData {
	d := operatorData{Dev: p.cfg.Dev && p.cfg.Operator.Faults != nil, Scenarios: operator.Scenarios}
	d.Snapshot, _ = p.cfg.Operator.Scraper.Watch()
	if f := p.cfg.Operator.Faults; f != nil {
		d.Services, d.Active = f.Services(), f.Active()
	}
	if l := p.cfg.Operator.Load; l != nil && p.cfg.Dev {
		var lines []string
		d.Run, lines, _ = l.State()
		d.Lines = strings.Join(lines, "\n")
	}
	return d
}

func (p *Pages) operatorPage(c *gin.Context) {
	p.operatorWith(c, http.StatusOK, nil)
}

func (p *Pages) operatorWith(c *gin.Context, status int, f *flash) {
	v := p.view(c, "Operator view", p.operatorData())
	v.Flash = f
	p.render(c, status, "operator", v)
}

// operatorEvents streams the live view as server-sent events: a "metrics"
// event with the table (server-rendered HTML) at each new reading, once a
// second, and a "load" event with the load run's output when it changes.
// A stream lasts 20 s (within the listener's write deadline); the browser's
// EventSource reconnects at once.
func (p *Pages) operatorEvents(c *gin.Context) {
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 500\n\n")
	w.Flush()
	ctx := c.Request.Context()
	end := time.NewTimer(20 * time.Second)
	defer end.Stop()
	var loadChanged <-chan struct{}
	lastLoad := ""
	for {
		snap, changed := p.cfg.Operator.Scraper.Watch()
		if !snap.At.IsZero() {
			p.sendEvent(c, "metrics", "live", operatorData{Snapshot: snap})
		}
		if l := p.cfg.Operator.Load; l != nil && p.cfg.Dev {
			run, lines, ch := l.State()
			loadChanged = ch
			text := run.Scenario + run.Result + strconv.FormatBool(run.Running) + strings.Join(lines, "\n")
			if text != lastLoad {
				lastLoad = text
				p.sendEvent(c, "load", "load", operatorData{Run: run, Lines: strings.Join(lines, "\n")})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-end.C:
			return
		case <-changed:
		case <-loadChanged:
		}
	}
}

// sendEvent renders the template block name and sends it as one event.
func (p *Pages) sendEvent(c *gin.Context, event, block string, d operatorData) {
	var b bytes.Buffer
	if err := p.pages["operator"].ExecuteTemplate(&b, block, d); err != nil {
		p.cfg.Log.ErrorContext(c.Request.Context(), "render event", "err", err)
		return
	}
	fmt.Fprintf(c.Writer, "event: %s\n", event)
	for _, line := range strings.Split(b.String(), "\n") {
		fmt.Fprintf(c.Writer, "data: %s\n", line)
	}
	fmt.Fprint(c.Writer, "\n")
	c.Writer.Flush()
}

// devOnly refuses the fault toggles and load runs outside dev.
func (p *Pages) devOnly(c *gin.Context) bool {
	if !p.cfg.Dev || p.cfg.Operator.Faults == nil {
		p.operatorWith(c, http.StatusForbidden, &flash{"bad", "Fault toggles and load runs exist only when STRATA_ENV=dev."})
		return false
	}
	return true
}

func (p *Pages) setFault(c *gin.Context) {
	if !p.devOnly(c) {
		return
	}
	var fault resilience.Fault
	if c.PostForm("action") != "clear" {
		rate, err1 := strconv.ParseFloat(c.DefaultPostForm("error_rate", "0"), 64)
		ms, err2 := strconv.Atoi(c.DefaultPostForm("latency_ms", "0"))
		if err1 != nil || err2 != nil || math.IsNaN(rate) {
			p.operatorWith(c, http.StatusUnprocessableEntity, &flash{"bad", "The error rate is a number from 0 to 1, the latency whole milliseconds."})
			return
		}
		fault = resilience.Fault{ErrorRate: rate, Latency: time.Duration(ms) * time.Millisecond}
	}
	svc, dep := c.PostForm("service"), strings.TrimSpace(c.PostForm("dependency"))
	if err := p.cfg.Operator.Faults.Set(c.Request.Context(), svc, dep, fault); err != nil {
		p.operatorWith(c, http.StatusUnprocessableEntity, &flash{"bad", "The fault toggle was not set: " + err.Error()})
		return
	}
	msg := fmt.Sprintf("Fault set: %s's calls to %s fail %.0f%% of the time, %d ms added.", svc, dep, fault.ErrorRate*100, fault.Latency.Milliseconds())
	if fault == (resilience.Fault{}) {
		msg = fmt.Sprintf("Fault cleared: %s's calls to %s run normally.", svc, dep)
	}
	p.cfg.Log.InfoContext(c.Request.Context(), "fault toggle", "service", svc, "dependency", dep, "error_rate", fault.ErrorRate, "latency", fault.Latency)
	p.operatorWith(c, http.StatusOK, &flash{"ok", msg})
}

func (p *Pages) startLoad(c *gin.Context) {
	if !p.devOnly(c) {
		return
	}
	if p.cfg.Operator.Load == nil {
		p.operatorWith(c, http.StatusConflict, &flash{"bad", "The load tool is not configured (STRATA_CONSOLE_LOAD_BIN)."})
		return
	}
	if err := p.cfg.Operator.Load.Start(c.PostForm("scenario")); err != nil {
		p.operatorWith(c, http.StatusConflict, &flash{"bad", err.Error()})
		return
	}
	p.cfg.Log.InfoContext(c.Request.Context(), "load run started", "scenario", c.PostForm("scenario"))
	p.operatorWith(c, http.StatusOK, &flash{"ok", "Load run started: " + c.PostForm("scenario") + "."})
}

func (p *Pages) stopLoad(c *gin.Context) {
	if !p.devOnly(c) {
		return
	}
	if p.cfg.Operator.Load == nil {
		p.operatorWith(c, http.StatusConflict, &flash{"bad", "No load run is going."})
		return
	}
	if err := p.cfg.Operator.Load.Stop(); err != nil {
		p.operatorWith(c, http.StatusConflict, &flash{"bad", err.Error()})
		return
	}
	p.operatorWith(c, http.StatusOK, &flash{"ok", "Load run stopping (it reports what it measured, as with Ctrl-C)."})
}

// num formats a rate or a gauge; NaN is a dash.
func num(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

func percent(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return strconv.FormatFloat(v*100, 'f', 1, 64) + "%"
}
