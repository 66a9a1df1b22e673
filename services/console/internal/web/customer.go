package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/services/console/internal/backend"
	"github.com/strata-ref/strata/services/console/internal/bff"
)

func (p *Pages) registerCustomer(r gin.IRouter) {
	r.GET("/transfer", p.transferForm)
	r.POST("/transfer", p.transfer)
	r.GET("/activity", p.activity)
	r.GET("/sessions", p.sessions)
	r.POST("/sessions/revoke", p.revokeSession)
}

// parseAmount reads "12.34" (or "12") as minor units: 1234.
func parseAmount(s string) (int64, error) {
	s = strings.TrimSpace(s)
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 2 || whole == "" {
		return 0, errors.New("enter an amount like 12.34")
	}
	frac = (frac + "00")[:2]
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w < 0 || w > 1e12 {
		return 0, errors.New("enter an amount like 12.34")
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, errors.New("enter an amount like 12.34")
	}
	n := w*100 + f
	if n <= 0 {
		return 0, errors.New("the amount must be more than zero")
	}
	return n, nil
}

type transferData struct {
	Accounts []backend.Account
	Key      string
	// Form keeps what was entered when the page is shown again.
	Form     backend.TransferInput
	Amount   string
	Transfer *backend.Transfer
}

func (p *Pages) transferForm(c *gin.Context) {
	p.transferPage(c, http.StatusOK, transferData{}, nil)
}

func (p *Pages) transferPage(c *gin.Context, status int, d transferData, f *flash) {
	tok, ok := p.token(c)
	if !ok {
		return
	}
	accts, err := p.cfg.Backend.Accounts(c.Request.Context(), tok)
	if err != nil && f == nil {
		f = p.failure(c, "Loading your accounts", err)
	}
	d.Accounts, d.Key = accts, newKey()
	v := p.view(c, "Send money", d)
	v.Flash = f
	p.render(c, status, "transfer", v)
}

// transfer posts the form under the Idempotency-Key minted when the form
// was rendered, and renders the answer directly (no redirect): a reload
// re-posts the same key, and the ledger's replay is shown as such.
func (p *Pages) transfer(c *gin.Context) {
	tok, ok := p.token(c)
	if !ok {
		return
	}
	in := backend.TransferInput{From: c.PostForm("from"), To: strings.TrimSpace(c.PostForm("to")),
		Currency: c.PostForm("currency"), Memo: c.PostForm("memo")}
	d := transferData{Form: in, Amount: c.PostForm("amount")}
	amount, err := parseAmount(d.Amount)
	if err != nil {
		p.transferPage(c, http.StatusUnprocessableEntity, d, &flash{"bad", err.Error()})
		return
	}
	in.Amount = amount
	key := c.PostForm("idempotency_key")
	ctx := c.Request.Context()
	start := time.Now()
	t, res, err := p.cfg.Backend.Transfer(ctx, tok, key, in)
	// A second click while the first is still being processed: the ledger
	// answers 409 until the first completes, then replays it.
	for i := 0; i < 30 && backend.StatusOf(err) == http.StatusConflict; i++ {
		time.Sleep(100 * time.Millisecond)
		t, res, err = p.cfg.Backend.Transfer(ctx, tok, key, in)
	}
	if err != nil {
		f := p.failure(c, "Sending the money", err)
		switch backend.StatusOf(err) {
		case http.StatusUnprocessableEntity:
			f = &flash{"bad", "Refused (422): " + problemDetail(err, "insufficient funds or a currency mismatch")}
		case http.StatusNotFound:
			f = &flash{"bad", "Refused (404): no account you may use has that id (the ledger does not say whether it exists)."}
		}
		p.transferPage(c, http.StatusOK, d, f)
		return
	}
	d.Transfer = &t
	f := &flash{"ok", fmt.Sprintf("Sent %s to %s (transfer %s) in %d ms.", formatMoney(t.Amount, t.Currency), t.ToAccountID, t.ID,
		time.Since(start).Milliseconds())}
	if res.Replayed {
		f = &flash{"info", fmt.Sprintf("This form was already submitted. The ledger replayed its first answer (Idempotent-Replayed: true) for transfer %s: the money moved once.", t.ID)}
	} else {
		p.measureFeedDelay(session(c), tok, t)
	}
	p.transferPage(c, http.StatusOK, d, f)
}

func problemDetail(err error, def string) string {
	var pr *backend.Problem
	if errors.As(err, &pr) && pr.Detail != "" {
		return pr.Detail
	}
	return def
}

// feedDelay is how long a transfer took to appear in the sender's activity
// feed: the ledger commits it with an outbox row, the relay delivers it to
// analytics, analytics writes it to Cassandra.
type feedDelay struct {
	Posted time.Time
	Delay  time.Duration // 0 while not seen yet
	Gave   bool          // gave up looking
}

const feedKeyPrefix = "feed:"

// measureFeedDelay polls the sender's activity feed until the transfer
// shows up, and keeps the delay in the session for the activity page.
func (p *Pages) measureFeedDelay(s *bff.Session, tok string, t backend.Transfer) {
	posted := time.Now()
	key := feedKeyPrefix + t.ID
	s.Values.Store(key, feedDelay{Posted: posted})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			evs, err := p.cfg.Backend.Activity(ctx, tok, t.FromAccountID)
			if err == nil && slices.ContainsFunc(evs, func(e backend.Event) bool { return e.TransferID == t.ID }) {
				s.Values.Store(key, feedDelay{Posted: posted, Delay: time.Since(posted)})
				return
			}
			select {
			case <-ctx.Done():
				s.Values.Store(key, feedDelay{Posted: posted, Gave: true})
				return
			case <-tick.C:
			}
		}
	}()
}

type activityRow struct {
	backend.Event
	Delay string // "appeared after 180 ms", for transfers sent from this session
}

type activityData struct {
	Accounts []backend.Account
	Account  string
	Events   []activityRow
	Pending  bool // a transfer of this session is not in the feed yet
}

func (p *Pages) activity(c *gin.Context) {
	tok, ok := p.token(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	accts, err := p.cfg.Backend.Accounts(ctx, tok)
	v := p.view(c, "Activity", nil)
	if err != nil {
		v.Flash = p.failure(c, "Loading your accounts", err)
	}
	d := activityData{Accounts: accts, Account: c.Query("account")}
	if d.Account == "" && len(accts) > 0 {
		d.Account = accts[0].ID
	}
	s := session(c)
	if d.Account != "" {
		evs, err := p.cfg.Backend.Activity(ctx, tok, d.Account)
		if err != nil {
			v.Flash = p.failure(c, "Loading the activity", err)
		}
		for _, e := range evs {
			row := activityRow{Event: e}
			if x, ok := s.Values.Load(feedKeyPrefix + e.TransferID); ok && e.TransferID != "" {
				if fd := x.(feedDelay); fd.Delay > 0 {
					row.Delay = fmt.Sprintf("appeared here %d ms after the ledger accepted it", fd.Delay.Milliseconds())
				}
			}
			d.Events = append(d.Events, row)
		}
	}
	// Transfers of this session not yet in the feed: say so, and reload.
	s.Values.Range(func(k, x any) bool {
		if fd := x.(feedDelay); strings.HasPrefix(k.(string), feedKeyPrefix) && fd.Delay == 0 && !fd.Gave {
			d.Pending = true
		}
		return true
	})
	v.Data = d
	if d.Pending {
		c.Header("Refresh", "1")
	}
	p.render(c, http.StatusOK, "activity", v)
}

type sessionsData struct {
	Sessions []backend.SessionInfo
	Current  string
}

func (p *Pages) sessions(c *gin.Context) {
	p.sessionsWith(c, nil)
}

func (p *Pages) sessionsWith(c *gin.Context, f *flash) {
	tok, ok := p.token(c)
	if !ok {
		return
	}
	ss, err := p.cfg.Backend.Sessions(c.Request.Context(), tok)
	v := p.view(c, "Sessions", sessionsData{Sessions: ss, Current: session(c).SID()})
	v.Flash = f
	if err != nil && f == nil {
		v.Flash = p.failure(c, "Loading your sessions", err)
	}
	p.render(c, http.StatusOK, "sessions", v)
}

// revokeSession ends one of the person's sessions at the session service;
// its tokens stop working everywhere. Ending the console's own session
// signs the person out here too.
func (p *Pages) revokeSession(c *gin.Context) {
	tok, ok := p.token(c)
	if !ok {
		return
	}
	sid := c.PostForm("sid")
	s := session(c)
	if err := p.cfg.Backend.RevokeSession(c.Request.Context(), tok, sid); err != nil {
		p.sessionsWith(c, p.failure(c, "Revoking the session", err))
		return
	}
	p.cfg.BFF.EndSID(sid)
	if sid == s.SID() {
		p.cfg.BFF.End(c.Writer, s)
		p.render(c, http.StatusOK, "message", view{Title: "Session revoked", Data: "You revoked the session this console was using, so you are signed out here too."})
		return
	}
	p.sessionsWith(c, &flash{"ok", "Session revoked: its tokens are refused from now on."})
}
