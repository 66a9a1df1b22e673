// Package web is the console's pages: server-rendered html/template pages
// (embedded in the binary), plain forms that work without JavaScript, and
// one small script for the operator view's live updates. Every page needs a
// signed-in session (package bff); every POST carries the session's CSRF
// token. What a person may do is decided by the services, with the
// person's own access token (package backend): the console only shows the
// answer, refusals included.
package web

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/strata-ref/strata/services/console/internal/backend"
	"github.com/strata-ref/strata/services/console/internal/bff"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config wires the pages.
type Config struct {
	BFF     *bff.BFF
	Backend *backend.Client
	Log     *slog.Logger
	// Issuer is the provider's origin, allowed as a form target by the
	// Content-Security-Policy (sign-out redirects there).
	Issuer string
	// Dev enables the operator's fault toggles and load runs.
	Dev      bool
	Operator Operator
}

// Pages holds the parsed templates and handlers.
type Pages struct {
	cfg   Config
	pages map[string]*template.Template
}

var funcs = template.FuncMap{
	"money":   formatMoney,
	"num":     num,
	"percent": percent,
	"ms":      func(d time.Duration) int64 { return d.Milliseconds() },
	"mulf":    func(f float64) float64 { return f * 100 },
}

// New parses the templates.
func New(cfg Config) (*Pages, error) {
	p := &Pages{cfg: cfg, pages: map[string]*template.Template{}}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if n == "templates/layout.html" {
			continue
		}
		t, err := template.New("layout").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", n, err)
		}
		p.pages[strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")] = t
	}
	return p, nil
}

// Register mounts the pages on the public engine.
func (p *Pages) Register(r gin.IRouter) {
	static, _ := fs.Sub(staticFS, "static")
	r.Use(p.headers)
	r.StaticFS("/static", http.FS(static))
	r.GET("/login", func(c *gin.Context) { p.cfg.BFF.Login(c.Writer, c.Request, c.Query("return_to")) })
	r.GET("/callback", func(c *gin.Context) { p.cfg.BFF.Callback(c.Writer, c.Request) })
	r.GET("/signed-out", func(c *gin.Context) {
		p.render(c, http.StatusOK, "signedout", view{Title: "Signed out"})
	})

	a := r.Group("", p.requireSession, p.checkCSRF)
	a.GET("/", p.home)
	a.POST("/accounts", p.openAccount)
	a.POST("/logout", func(c *gin.Context) { p.cfg.BFF.Logout(c.Writer, c.Request, session(c)) })
	p.registerCustomer(a)
	p.registerRoles(a)
	p.registerOperator(a)
}

// headers: no caching of pages that show balances, no framing, and a
// Content-Security-Policy that allows only the console's own script and
// style (no inline script at all), forms posting to the console or the
// provider.
func (p *Pages) headers(c *gin.Context) {
	h := c.Writer.Header()
	issuer := p.cfg.Issuer
	if u, err := url.Parse(issuer); err == nil {
		issuer = u.Scheme + "://" + u.Host
	}
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"frame-ancestors 'none'; base-uri 'none'; form-action 'self' "+issuer)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if !strings.HasPrefix(c.Request.URL.Path, "/static/") {
		h.Set("Cache-Control", "no-store")
	}
	c.Next()
}

const sessionKey = "console.session"

func session(c *gin.Context) *bff.Session { return c.MustGet(sessionKey).(*bff.Session) }

// requireSession sends a browser without a session to sign in, and back
// to the page it asked for afterwards.
func (p *Pages) requireSession(c *gin.Context) {
	s, ok := p.cfg.BFF.Session(c.Request)
	if !ok {
		if c.Request.Method != http.MethodGet {
			p.render(c, http.StatusUnauthorized, "message", view{Title: "Signed out", Data: "Your session has ended. Sign in again."})
			c.Abort()
			return
		}
		c.Redirect(http.StatusFound, "/login?return_to="+url.QueryEscape(c.Request.URL.RequestURI()))
		c.Abort()
		return
	}
	c.Set(sessionKey, s)
	c.Next()
}

// checkCSRF refuses a state-changing request without the session's CSRF
// token (synchronizer token pattern; SameSite=Lax already keeps the cookie
// off cross-site POSTs, this is the second line).
func (p *Pages) checkCSRF(c *gin.Context) {
	if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
		c.Next()
		return
	}
	if !session(c).CheckCSRF(c.PostForm("csrf")) {
		p.render(c, http.StatusForbidden, "message", view{Title: "Refused", Data: "This form has expired or did not come from the console. Reload the page and try again."})
		c.Abort()
		return
	}
	c.Next()
}

// flash is a one-line outcome shown at the top of a page.
type flash struct {
	Kind string // ok, bad, info
	Text string
}

// view is what every page template gets.
type view struct {
	Title string
	User  *bff.User
	CSRF  string
	Flash *flash
	Data  any
}

func (p *Pages) view(c *gin.Context, title string, data any) view {
	s := session(c)
	return view{Title: title, User: &s.User, CSRF: s.CSRF, Data: data}
}

func (p *Pages) render(c *gin.Context, status int, name string, v view) {
	t, ok := p.pages[name]
	if !ok {
		c.String(http.StatusInternalServerError, "no page "+name)
		return
	}
	c.Status(status)
	c.Header("Content-Type", "text/html; charset=utf-8")
	if err := t.ExecuteTemplate(c.Writer, "layout", v); err != nil {
		p.cfg.Log.ErrorContext(c.Request.Context(), "render", "page", name, "err", err)
	}
}

// token returns the session's access token; when the sign-in has ended
// (revoked, expired) the session is dropped and the person signs in again.
func (p *Pages) token(c *gin.Context) (string, bool) {
	s := session(c)
	tok, err := s.AccessToken()
	if err != nil {
		p.cfg.Log.InfoContext(c.Request.Context(), "session tokens unusable", "err", err)
		p.cfg.BFF.End(c.Writer, s)
		c.Redirect(http.StatusSeeOther, "/login")
		c.Abort()
		return "", false
	}
	return tok, true
}

// failure turns a service's refusal or outage into a sentence for the
// person; a 401 means the sign-in ended (the session was revoked).
func (p *Pages) failure(c *gin.Context, what string, err error) *flash {
	switch backend.StatusOf(err) {
	case 0:
		p.cfg.Log.WarnContext(c.Request.Context(), what, "err", err)
		return &flash{"bad", what + ": the service is unavailable right now (" + shortErr(err) + "). Try again shortly."}
	case http.StatusUnauthorized:
		// The session was revoked (or has ended) at the provider: its
		// tokens are refused everywhere, so the console forgets it too.
		p.cfg.BFF.End(c.Writer, session(c))
		return &flash{"bad", what + ": your sign-in session was revoked or has ended (401). Reload the page to sign in again."}
	case http.StatusForbidden:
		return &flash{"bad", what + ": refused (403): you are not allowed to do this."}
	case http.StatusNotFound:
		return &flash{"bad", what + ": not found (404)."}
	case http.StatusTooManyRequests:
		return &flash{"bad", what + ": the service is overloaded (429); it asked to retry shortly."}
	default:
		return &flash{"bad", what + ": " + err.Error()}
	}
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// newKey mints an Idempotency-Key when a form is rendered: the form posts
// it, so a double submit or a reload sends the same key and the ledger
// moves the money once.
func newKey() string { return uuid.NewString() }

type homeData struct {
	Accounts []backend.Account
	Key      string
}

func (p *Pages) home(c *gin.Context) {
	p.homeWith(c, nil)
}

func (p *Pages) homeWith(c *gin.Context, f *flash) {
	tok, ok := p.token(c)
	if !ok {
		return
	}
	accts, err := p.cfg.Backend.Accounts(c.Request.Context(), tok)
	v := p.view(c, "Accounts", homeData{Accounts: accts, Key: newKey()})
	v.Flash = f
	if err != nil && f == nil {
		v.Flash = p.failure(c, "Loading your accounts", err)
	}
	p.render(c, http.StatusOK, "home", v)
}

func (p *Pages) openAccount(c *gin.Context) {
	tok, ok := p.token(c)
	if !ok {
		return
	}
	a, res, err := p.cfg.Backend.OpenAccount(c.Request.Context(), tok, c.PostForm("idempotency_key"), c.PostForm("name"), c.PostForm("currency"))
	if err != nil {
		p.homeWith(c, p.failure(c, "Opening the account", err))
		return
	}
	f := &flash{"ok", "Opened account " + a.Name + " (" + a.ID + ")."}
	if res.Replayed {
		f = &flash{"info", "This form was already submitted: the ledger replayed its first answer (account " + a.ID + "); no second account was opened."}
	}
	p.homeWith(c, f)
}

// formatMoney shows minor units with two decimals: 12345 EUR -> 123.45 EUR.
func formatMoney(minor int64, currency string) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, minor/100, minor%100, currency)
}
