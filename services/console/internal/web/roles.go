package web

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/services/console/internal/backend"
)

func (p *Pages) registerRoles(r gin.IRouter) {
	r.GET("/teller", p.tellerPage)
	r.POST("/teller/deposit", p.deposit)
	r.GET("/auditor", p.auditorPage)
	r.POST("/auditor/try-write", p.auditorWrite)
}

type tellerData struct {
	Key     string
	Form    backend.DepositInput
	Amount  string
	Refusal string // the policy decision in words
}

func (p *Pages) tellerPage(c *gin.Context) {
	v := p.view(c, "Deposits", tellerData{Key: newKey()})
	p.render(c, http.StatusOK, "teller", v)
}

// deposit posts a deposit with the teller's own token; the ledger's Cedar
// policies decide, and a refusal is explained in words.
func (p *Pages) deposit(c *gin.Context) {
	tok, ok := p.token(c)
	if !ok {
		return
	}
	in := backend.DepositInput{AccountID: strings.TrimSpace(c.PostForm("account")), Currency: c.PostForm("currency")}
	d := tellerData{Key: newKey(), Form: in, Amount: c.PostForm("amount")}
	v := p.view(c, "Deposits", nil)
	amount, err := parseAmount(d.Amount)
	if err != nil {
		v.Flash, v.Data = &flash{"bad", err.Error()}, d
		p.render(c, http.StatusUnprocessableEntity, "teller", v)
		return
	}
	in.Amount = amount
	t, res, err := p.cfg.Backend.Deposit(c.Request.Context(), tok, c.PostForm("idempotency_key"), in)
	switch {
	case err == nil && res.Replayed:
		v.Flash = &flash{"info", "This form was already submitted: the ledger replayed its first answer (deposit " + t.ID + "); the money came in once."}
	case err == nil:
		v.Flash = &flash{"ok", fmt.Sprintf("Deposited %s into %s (transfer %s).", formatMoney(t.Amount, t.Currency), t.ToAccountID, t.ID)}
	default:
		v.Flash = p.failure(c, "The deposit", err)
		d.Refusal = depositRefusal(backend.StatusOf(err), session(c).User.Region, session(c).User.HasRole("admin"))
	}
	v.Data = d
	p.render(c, http.StatusOK, "teller", v)
}

// depositRefusal says in words what the ledger's Cedar policies
// (services/ledger/policies/ledger.cedar) decided. The ledger answers 404
// when the account is outside what the caller may even read, and 403 when
// the caller may read it but not deposit now.
func depositRefusal(status int, region string, admin bool) string {
	if region == "" {
		region = "none"
	}
	switch {
	case status == http.StatusNotFound && !admin:
		return "Cedar decision: deny. A teller may read and deposit only into accounts in their own region (policies " +
			"teller-reads-accounts-in-region and teller-deposits-in-region-during-business-hours); your region is " + region +
			" and this account is not in it. To you the account does not exist, so the ledger answers 404 rather than " +
			"403: it does not even confirm that the account exists."
	case status == http.StatusNotFound:
		return "The ledger found no customer account with that id (404)."
	case status == http.StatusForbidden && admin:
		return "Cedar decision: deny. The policy no-deposit-into-own-account forbids anyone, an admin included, to deposit into an account they own."
	case status == http.StatusForbidden:
		return "Cedar decision: deny. The account is in your region (" + region + "), but the policy " +
			"teller-deposits-in-region-during-business-hours permits deposits only from 09:00 to 17:00 in your region's " +
			"time, and no-deposit-into-own-account forbids depositing into an account you own."
	}
	return ""
}

type auditorData struct {
	Stats   map[string]any
	Totals  []statTotal
	Days    []statDay
	Refusal string
}

type statTotal struct {
	Currency string
	Count    int64
	Amount   int64
}

type statDay struct {
	Day    string
	Totals []statTotal
}

func (p *Pages) auditorPage(c *gin.Context) {
	p.auditorWith(c, nil, "")
}

func (p *Pages) auditorWith(c *gin.Context, f *flash, refusal string) {
	tok, ok := p.token(c)
	if !ok {
		return
	}
	stats, err := p.cfg.Backend.Stats(c.Request.Context(), tok)
	v := p.view(c, "Transfer statistics", nil)
	v.Flash = f
	if err != nil && f == nil {
		v.Flash = p.failure(c, "Loading the statistics", err)
	}
	d := auditorData{Stats: stats, Refusal: refusal, Totals: totalsOf(stats["totals"])}
	if days, ok := stats["days"].([]any); ok {
		for _, x := range days {
			if m, ok := x.(map[string]any); ok {
				day, _ := m["day"].(string)
				d.Days = append(d.Days, statDay{Day: day, Totals: totalsOf(m["totals"])})
			}
		}
	}
	v.Data = d
	p.render(c, http.StatusOK, "auditor", v)
}

func totalsOf(x any) []statTotal {
	var out []statTotal
	list, _ := x.([]any)
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		cur, _ := m["currency"].(string)
		n, _ := m["count"].(float64)
		a, _ := m["amount"].(float64)
		out = append(out, statTotal{Currency: cur, Count: int64(n), Amount: int64(a)})
	}
	return out
}

// auditorWrite tries a write (opening an account) with the auditor's own
// token, to show the refusal: auditors only read.
func (p *Pages) auditorWrite(c *gin.Context) {
	tok, ok := p.token(c)
	if !ok {
		return
	}
	_, _, err := p.cfg.Backend.OpenAccount(c.Request.Context(), tok, newKey(), "Auditor's attempt", "EUR")
	if err == nil {
		p.auditorWith(c, &flash{"bad", "The ledger accepted a write from this user: it is not only an auditor."}, "")
		return
	}
	refusal := ""
	if backend.StatusOf(err) == http.StatusForbidden {
		refusal = "Cedar decision: deny. No policy permits an auditor to create an account (only customer-opens-account " +
			"does, for customers); auditor-reads-accounts permits reading only. Deny is the default."
	}
	p.auditorWith(c, p.failure(c, "Opening an account as an auditor", err), refusal)
}
