// Package httpapi is the analytics service's HTTP surface: the public
// routes (client ingestion, account activity, auditors' transfer stats)
// behind access-token authentication, the internal ingestion route for the
// ledger's outbox relay (mTLS peer "ledger" plus a token the ledger obtained
// by token exchange), and the one mapping from domain errors to status codes.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/openapi"
	"github.com/strata-ref/strata/libs/problem"
	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/services/analytics/api"
	"github.com/strata-ref/strata/services/analytics/internal/analytics"
)

// API serves the analytics routes.
type API struct {
	svc   *analytics.Service
	authn gin.HandlerFunc
	log   *slog.Logger
}

// New returns the API; authenticate is the access-token middleware (it puts
// an authn.Principal in the request context or answers 401).
func New(svc *analytics.Service, authenticate func(http.Handler) http.Handler, log *slog.Logger) *API {
	return &API{svc: svc, authn: server.Adapt(authenticate), log: log}
}

// RegisterPublic mounts the client routes and the OpenAPI document on the
// TLS listener.
func (a *API) RegisterPublic(r gin.IRouter) {
	r.GET(openapi.Path, gin.WrapH(api.Document))
	g := r.Group("/v1", a.authn)
	g.POST("/events", a.postEvents)
	g.GET("/accounts/:id/activity", a.activity)
	g.GET("/stats/transfers", a.transferStats)
}

// RegisterInternal mounts the ledger's ingestion route on the mTLS
// listener. Three checks, each enforced even if another failed: the peer
// certificate is the ledger's SVID; the token is valid for this audience;
// and the token was exchanged by the ledger (act.sub is its SPIFFE ID), so
// a stolen user token alone cannot write ledger events.
func (a *API) RegisterInternal(r gin.IRouter) {
	r.POST("/internal/events", server.Adapt(server.RequirePeers("ledger")), a.authn, requireActor(mtls.ID("ledger").String()), a.postLedgerEvents)
}

func requireActor(actor string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, ok := authn.FromContext(c.Request.Context())
		if !ok || p.Actor != actor {
			server.Abort(c, problem.New(http.StatusForbidden, "this route needs a token exchanged by the ledger"))
			return
		}
		c.Next()
	}
}

func caller(c *gin.Context) (analytics.Caller, bool) {
	p, ok := authn.FromContext(c.Request.Context())
	if !ok {
		// The middleware is mounted on every route; reaching here is a wiring bug.
		server.Abort(c, problem.New(http.StatusUnauthorized, "a valid access token is required"))
		return analytics.Caller{}, false
	}
	return analytics.Caller{Subject: p.Subject, Roles: p.Roles, SessionID: p.SessionID}, true
}

type clientBatch struct {
	Events []analytics.ClientEvent `json:"events"`
}

type ledgerBatch struct {
	Events []analytics.LedgerEvent `json:"events"`
}

type accepted struct {
	Accepted int `json:"accepted"`
}

func (a *API) postEvents(c *gin.Context) {
	who, ok := caller(c)
	if !ok {
		return
	}
	var req clientBatch
	if !server.DecodeJSON(c.Writer, c.Request, &req) {
		return
	}
	if err := a.svc.IngestClient(c.Request.Context(), who, req.Events); err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, accepted{len(req.Events)})
}

func (a *API) postLedgerEvents(c *gin.Context) {
	var req ledgerBatch
	if !server.DecodeJSON(c.Writer, c.Request, &req) {
		return
	}
	if err := a.svc.IngestLedger(c.Request.Context(), req.Events); err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, accepted{len(req.Events)})
}

func (a *API) activity(c *gin.Context) {
	who, ok := caller(c)
	if !ok {
		return
	}
	limit := 50
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			server.Abort(c, problem.New(http.StatusBadRequest, "limit must be an integer"))
			return
		}
		limit = n
	}
	page, err := a.svc.Activity(c.Request.Context(), who, c.Param("id"), c.Query("page"), limit)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, page)
}

func (a *API) transferStats(c *gin.Context) {
	who, ok := caller(c)
	if !ok {
		return
	}
	st, err := a.svc.TransferStats(c.Request.Context(), who, c.Query("from"), c.Query("to"))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, st)
}

// fail is the service's one error-to-status mapping.
func (a *API) fail(c *gin.Context, err error) {
	var ve *analytics.ValidationError
	switch {
	case errors.As(err, &ve):
		server.Abort(c, problem.New(http.StatusBadRequest, ve.Error()))
	case errors.Is(err, analytics.ErrInvalid):
		server.Abort(c, problem.New(http.StatusBadRequest, "invalid request"))
	case errors.Is(err, analytics.ErrNotFound):
		server.Abort(c, problem.New(http.StatusNotFound, "no such account"))
	case errors.Is(err, analytics.ErrUnknownAccount):
		server.Abort(c, problem.New(http.StatusUnprocessableEntity, "an event names an account that is unknown or not yours"))
	case errors.Is(err, authn.ErrSessionEnded):
		authn.SessionEnded(c.Writer, c.Request)
		c.Abort()
	case errors.Is(err, authn.ErrSessionUnknown):
		a.log.WarnContext(c.Request.Context(), "session check failed; refusing the write", "err", err)
		server.Abort(c, problem.New(http.StatusServiceUnavailable, "a dependency is unavailable; retry later").WithRetryAfter(time.Second))
	case errors.Is(err, analytics.ErrForbidden):
		server.Abort(c, problem.New(http.StatusForbidden, "your role may not use this operation"))
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		server.Abort(c, problem.New(http.StatusServiceUnavailable, "request cancelled"))
	case errors.Is(err, analytics.ErrUnavailable):
		server.Abort(c, problem.New(http.StatusServiceUnavailable, "event store unavailable; retry later").WithRetryAfter(a.svc.RetryAfter()))
	default:
		a.log.ErrorContext(c.Request.Context(), "request failed", "err", err, "request_id", server.RequestID(c.Request.Context()))
		server.Abort(c, problem.New(http.StatusInternalServerError, "internal error"))
	}
}
