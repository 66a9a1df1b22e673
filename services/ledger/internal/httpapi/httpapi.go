// Package httpapi is the ledger's public HTTP surface: the /v1 routes
// behind access-token authentication, the Idempotency-Key guard on every
// POST, the JSON shapes of the public API (docs/ledger.md), and the one
// mapping from domain errors to status codes (fail).
package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/idempotency"
	"github.com/strata-ref/strata/libs/openapi"
	"github.com/strata-ref/strata/libs/problem"
	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/services/ledger/api"
	"github.com/strata-ref/strata/services/ledger/internal/ledger"
)

// API serves the ledger routes.
type API struct {
	svc      *ledger.Service
	auth     *authn.Validator
	log      *slog.Logger
	onReplay func()
	cipher   idempotency.Cipher
}

// New returns the API. cipher seals the stored responses; onReplay counts
// replays (may be nil).
func New(svc *ledger.Service, auth *authn.Validator, cipher idempotency.Cipher, log *slog.Logger, onReplay func()) *API {
	if onReplay == nil {
		onReplay = func() {}
	}
	return &API{svc: svc, auth: auth, cipher: cipher, log: log, onReplay: onReplay}
}

// Register mounts the /v1 routes and the OpenAPI document on the public
// engine.
func (a *API) Register(r gin.IRouter) {
	r.GET(openapi.Path, gin.WrapH(api.Document))
	v1 := r.Group("/v1", server.Adapt(a.auth.Middleware(a.log)))
	// Replays and 422s are answered by the key's claim, which rides in the
	// transaction's first batch (docs/idempotency.md, "Replays").
	idem := server.Adapt(idempotency.Middleware(idempotency.Config{Scope: principalScope}))
	v1.POST("/accounts", idem, a.openAccount)
	v1.GET("/accounts", a.listAccounts)
	v1.GET("/accounts/:id", a.getAccount)
	v1.GET("/accounts/:id/entries", a.entries)
	v1.POST("/deposits", idem, a.deposit)
	v1.POST("/transfers", idem, a.transfer)
	v1.GET("/transfers/:id", a.getTransfer)
}

// principalScope scopes idempotency keys to the authenticated user, so
// one user's key can neither collide with nor reveal another's.
func principalScope(r *http.Request) (string, bool) {
	p, ok := authn.FromContext(r.Context())
	return p.Subject, ok && p.Subject != ""
}

func principal(c *gin.Context) authn.Principal {
	p, _ := authn.FromContext(c.Request.Context())
	return p
}

// AccountJSON is the account representation.
type AccountJSON struct {
	ID        string    `json:"id"`
	Owner     string    `json:"owner"`
	Name      string    `json:"name"`
	Currency  string    `json:"currency"`
	Balance   int64     `json:"balance"`
	Region    string    `json:"region"`
	CreatedAt time.Time `json:"created_at"`
}

func accountJSON(a ledger.Account) AccountJSON {
	return AccountJSON{ID: a.ID, Owner: a.Owner, Name: a.Name, Currency: a.Currency, Balance: a.Balance,
		Region: a.Region, CreatedAt: a.CreatedAt.UTC()}
}

// TransferJSON is the transfer representation (deposits too).
type TransferJSON struct {
	ID            string    `json:"id"`
	FromAccountID string    `json:"from_account_id"`
	ToAccountID   string    `json:"to_account_id"`
	Amount        int64     `json:"amount"`
	Currency      string    `json:"currency"`
	Memo          string    `json:"memo"`
	CreatedAt     time.Time `json:"created_at"`
}

func transferJSON(t ledger.Transfer) TransferJSON {
	return TransferJSON{ID: t.ID, FromAccountID: t.FromAccountID, ToAccountID: t.ToAccountID, Amount: t.Amount,
		Currency: t.Currency, Memo: t.Memo, CreatedAt: t.CreatedAt.UTC()}
}

// EntryJSON is one posting.
type EntryJSON struct {
	ID           int64     `json:"id"`
	TransferID   string    `json:"transfer_id"`
	AccountID    string    `json:"account_id"`
	Amount       int64     `json:"amount"`
	Currency     string    `json:"currency"`
	BalanceAfter int64     `json:"balance_after"`
	CreatedAt    time.Time `json:"created_at"`
}

// created renders a result as a 201 response. The store records these
// bytes with the idempotency key and the handler sends the same rendering
// of the same result, so the first answer and every replay are identical.
func created[T, J any](conv func(T) J) func(T) (idempotency.Response, error) {
	return func(v T) (idempotency.Response, error) {
		body, err := json.Marshal(conv(v))
		if err != nil {
			return idempotency.Response{}, err
		}
		return idempotency.Response{Status: http.StatusCreated, ContentType: "application/json; charset=utf-8", Body: body}, nil
	}
}

// errNoKey is a keyed route mounted without the idempotency middleware.
var errNoKey = errors.New("httpapi: no idempotency key in the request's context")

// keyed takes the request the idempotency middleware admitted, once, and
// pairs it with how to render the operation's result and the cipher that
// seals the stored copy: what the store needs to claim and complete the key.
func keyed[T, J any](c *gin.Context, conv func(T) J, cipher idempotency.Cipher) (*idempotency.Keyed[T], error) {
	req, ok := idempotency.FromContext(c.Request.Context())
	if !ok {
		return nil, errNoKey
	}
	return &idempotency.Keyed[T]{Request: req, Render: created(conv), Cipher: cipher}, nil
}

// respond sends the operation's result, rendered as the store recorded it
// with the key.
func respond[T any](a *API, c *gin.Context, key *idempotency.Keyed[T], result T) {
	resp, err := key.Render(result)
	if err != nil {
		a.fail(c, err)
		return
	}
	idempotency.Write(c.Writer, resp, false)
}

type openAccountRequest struct {
	Currency string `json:"currency"`
	Name     string `json:"name"`
}

func (a *API) openAccount(c *gin.Context) {
	var req openAccountRequest
	if !server.DecodeJSON(c.Writer, c.Request, &req) {
		return
	}
	key, err := keyed(c, accountJSON, a.cipher)
	if err != nil {
		a.fail(c, err)
		return
	}
	acct, err := a.svc.OpenAccount(c.Request.Context(), principal(c), req.Currency, req.Name, key)
	if err != nil {
		a.fail(c, err)
		return
	}
	respond(a, c, key, acct)
}

func (a *API) listAccounts(c *gin.Context) {
	accts, err := a.svc.Accounts(c.Request.Context(), principal(c))
	if err != nil {
		a.fail(c, err)
		return
	}
	out := make([]AccountJSON, len(accts))
	for i, acct := range accts {
		out[i] = accountJSON(acct)
	}
	c.JSON(http.StatusOK, gin.H{"accounts": out})
}

func (a *API) getAccount(c *gin.Context) {
	acct, err := a.svc.Account(c.Request.Context(), principal(c), c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, accountJSON(acct))
}

var cursorPattern = regexp.MustCompile(`^[1-9][0-9]{0,17}$`)

func (a *API) entries(c *gin.Context) {
	var before int64
	if s := c.Query("before"); s != "" {
		// The cursor is a next_page this API wrote: a positive id in
		// decimal, without sign or leading zeros.
		var err error
		if !cursorPattern.MatchString(s) {
			err = strconv.ErrSyntax
		} else {
			before, err = strconv.ParseInt(s, 10, 64)
		}
		if err != nil {
			server.Abort(c, problem.New(http.StatusBadRequest, "before must be the next_page of a previous answer: a positive entry id"))
			return
		}
	}
	es, next, err := a.svc.Entries(c.Request.Context(), principal(c), c.Param("id"), before)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := make([]EntryJSON, len(es))
	for i, e := range es {
		out[i] = EntryJSON{ID: e.ID, TransferID: e.TransferID, AccountID: e.AccountID, Amount: e.Amount,
			Currency: e.Currency, BalanceAfter: e.BalanceAfter, CreatedAt: e.CreatedAt.UTC()}
	}
	resp := gin.H{"entries": out}
	if next != 0 {
		resp["next_page"] = strconv.FormatInt(next, 10)
	}
	c.JSON(http.StatusOK, resp)
}

type depositRequest struct {
	AccountID string `json:"account_id"`
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
}

func (a *API) deposit(c *gin.Context) {
	var req depositRequest
	if !server.DecodeJSON(c.Writer, c.Request, &req) {
		return
	}
	key, err := keyed(c, transferJSON, a.cipher)
	if err != nil {
		a.fail(c, err)
		return
	}
	t, err := a.svc.Deposit(c.Request.Context(), principal(c), req.AccountID, req.Amount, req.Currency, key)
	if err != nil {
		a.fail(c, err)
		return
	}
	respond(a, c, key, t)
}

type transferRequest struct {
	FromAccountID string `json:"from_account_id"`
	ToAccountID   string `json:"to_account_id"`
	Amount        int64  `json:"amount"`
	Currency      string `json:"currency"`
	Memo          string `json:"memo"`
}

func (a *API) transfer(c *gin.Context) {
	var req transferRequest
	if !server.DecodeJSON(c.Writer, c.Request, &req) {
		return
	}
	key, err := keyed(c, transferJSON, a.cipher)
	if err != nil {
		a.fail(c, err)
		return
	}
	t, err := a.svc.Transfer(c.Request.Context(), principal(c), ledger.TransferRequest{From: req.FromAccountID,
		To: req.ToAccountID, Amount: req.Amount, Currency: req.Currency, Memo: req.Memo}, key)
	if err != nil {
		a.fail(c, err)
		return
	}
	respond(a, c, key, t)
}

func (a *API) getTransfer(c *gin.Context) {
	t, err := a.svc.GetTransfer(c.Request.Context(), principal(c), c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, transferJSON(t))
}

// fail is the ledger's one error-to-status mapping.
func (a *API) fail(c *gin.Context, err error) {
	var inv *ledger.InvalidError
	var replay *idempotency.Replay
	if errors.As(err, &replay) {
		a.onReplay()
	}
	switch {
	case idempotency.Fail(c.Writer, c.Request, err): // replay, 409 in flight, 422 other body
		c.Abort()
	case errors.As(err, &inv):
		server.Abort(c, problem.New(http.StatusBadRequest, inv.Reason))
	case errors.Is(err, ledger.ErrNotFound):
		server.Abort(c, problem.New(http.StatusNotFound, "no such resource"))
	case errors.Is(err, ledger.ErrForbidden):
		server.Abort(c, problem.New(http.StatusForbidden, "not allowed"))
	case errors.Is(err, ledger.ErrInsufficientFunds):
		server.Abort(c, problem.New(http.StatusUnprocessableEntity, "insufficient funds"))
	case errors.Is(err, ledger.ErrCurrencyMismatch):
		server.Abort(c, problem.New(http.StatusUnprocessableEntity, "currency does not match the accounts"))
	case errors.Is(err, ledger.ErrSessionEnded):
		authn.SessionEnded(c.Writer, c.Request)
		c.Abort()
	case errors.Is(err, ledger.ErrUnavailable):
		a.log.WarnContext(c.Request.Context(), "dependency unavailable", "err", err)
		server.Abort(c, problem.New(http.StatusServiceUnavailable, "a dependency is unavailable; retry later").WithRetryAfter(time.Second))
	default:
		a.log.ErrorContext(c.Request.Context(), "request failed", "err", err, "request_id", server.RequestID(c.Request.Context()))
		server.Abort(c, problem.New(http.StatusInternalServerError, "internal error"))
	}
}
