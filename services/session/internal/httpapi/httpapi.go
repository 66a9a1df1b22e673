// Package httpapi is the session service's HTTP surface: the internal API
// on the mTLS listener (create, get, touch, delete; callers chosen by
// SPIFFE ID), the public API for a signed-in user's own sessions, and the
// one mapping from domain errors to status codes.
package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/openapi"
	"github.com/strata-ref/strata/libs/problem"
	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/services/session/api"
	"github.com/strata-ref/strata/services/session/internal/session"
)

// API serves the session routes.
type API struct{ svc *session.Service }

// New returns the API over svc.
func New(svc *session.Service) *API { return &API{svc: svc} }

// RegisterInternal mounts /internal/sessions. Only auth creates, touches
// and deletes; ledger and analytics may also read (the stateful check that
// a token's session is still alive before a write).
func (a *API) RegisterInternal(r gin.IRouter) {
	auth := server.Adapt(server.RequirePeers("auth"))
	g := r.Group("/internal/sessions")
	g.POST("", auth, a.create)
	g.GET("/:sid", server.Adapt(server.RequirePeers("auth", "ledger", "analytics")), a.get)
	g.POST("/:sid/touch", auth, a.touch)
	g.DELETE("/:sid", auth, a.delete)
	g.GET("", auth, a.listByUser)
}

// RegisterPublic mounts the OpenAPI document and GET /v1/sessions, GET and
// DELETE /v1/sessions/{sid} behind authenticate (the JWT middleware): a user
// sees and ends only their own sessions; another user's sid answers 404,
// exactly like an unknown one.
func (a *API) RegisterPublic(r gin.IRouter, authenticate func(http.Handler) http.Handler) {
	r.GET(openapi.Path, gin.WrapH(api.Document))
	g := r.Group("/v1/sessions", server.Adapt(authenticate))
	g.GET("", func(c *gin.Context) {
		p, _ := authn.FromContext(c.Request.Context())
		list(c, a.svc, p.Subject)
	})
	g.GET("/:sid", a.getOwn)
	g.DELETE("/:sid", a.deleteOwn)
}

// own reads a session through the cache and hides other users' sessions.
func (a *API) own(c *gin.Context) (session.Session, error) {
	ctx := c.Request.Context()
	p, _ := authn.FromContext(ctx)
	s, err := a.svc.Get(ctx, c.Param("sid"))
	if err == nil && s.UserID != p.Subject {
		return session.Session{}, session.ErrNotFound
	}
	return s, err
}

func (a *API) getOwn(c *gin.Context) {
	s, err := a.own(c)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s)
}

// deleteOwn ends one of the caller's sessions. It is a write, so the
// token's own session must still be alive, as at the ledger and analytics:
// a token whose session has ended (signed out, user disabled) is valid
// until exp but may end nothing. The check reads the same store the
// delete writes, so it is never stale.
func (a *API) deleteOwn(c *gin.Context) {
	ctx := c.Request.Context()
	p, _ := authn.FromContext(ctx)
	if _, err := a.svc.Get(ctx, p.SessionID); errors.Is(err, session.ErrNotFound) || errors.Is(err, session.ErrInvalid) {
		authn.SessionEnded(c.Writer, c.Request)
		c.Abort()
		return
	} else if err != nil {
		fail(c, err)
		return
	}
	s, err := a.own(c)
	if err == nil {
		err = a.svc.Revoke(c.Request.Context(), s.SID)
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

type createRequest struct {
	UserID    string    `json:"user_id"`
	FamilyID  string    `json:"family_id"`
	AuthTime  time.Time `json:"auth_time"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (a *API) create(c *gin.Context) {
	var req createRequest
	if !server.DecodeJSON(c.Writer, c.Request, &req) {
		return
	}
	s, err := a.svc.Create(c.Request.Context(), session.New(req))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, s)
}

func (a *API) get(c *gin.Context) {
	s, err := a.svc.Get(c.Request.Context(), c.Param("sid"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s)
}

type touchRequest struct {
	ExpiresAt time.Time `json:"expires_at"`
}

func (a *API) touch(c *gin.Context) {
	var req touchRequest
	if !server.DecodeJSON(c.Writer, c.Request, &req) {
		return
	}
	s, err := a.svc.Touch(c.Request.Context(), c.Param("sid"), req.ExpiresAt)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s)
}

func (a *API) delete(c *gin.Context) {
	if err := a.svc.Revoke(c.Request.Context(), c.Param("sid")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (a *API) listByUser(c *gin.Context) {
	uid := c.Query("user_id")
	if uid == "" {
		server.Abort(c, problem.New(http.StatusBadRequest, "user_id is required"))
		return
	}
	list(c, a.svc, uid)
}

func list(c *gin.Context, svc *session.Service, userID string) {
	ss, err := svc.List(c.Request.Context(), userID)
	if err != nil {
		fail(c, err)
		return
	}
	if ss == nil {
		ss = []session.Session{}
	}
	c.JSON(http.StatusOK, gin.H{"sessions": ss})
}

// fail is the service's one error-to-status mapping.
func fail(c *gin.Context, err error) {
	switch {
	case errors.Is(err, session.ErrNotFound):
		server.Abort(c, problem.New(http.StatusNotFound, "no such session"))
	case errors.Is(err, session.ErrInvalid):
		server.Abort(c, problem.New(http.StatusBadRequest, "invalid session request"))
	case errors.Is(err, session.ErrUnavailable):
		server.Abort(c, problem.New(http.StatusServiceUnavailable, "session store unavailable").WithRetryAfter(time.Second))
	default:
		_ = c.Error(err)
		server.Abort(c, problem.New(http.StatusInternalServerError, "internal error"))
	}
}
