// Package httpapi is the auth service's admin API: /v1/users, for callers
// whose access token carries the admin role (audience "auth"), and the one
// mapping from domain errors to HTTP status codes. The OpenID Connect
// endpoints are internal/oidc's.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/openapi"
	"github.com/strata-ref/strata/libs/problem"
	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/services/auth/api"
	"github.com/strata-ref/strata/services/auth/internal/identity"
)

// SessionCheck reports whether an SSO session is alive: writes are
// stateful (a token of a logged-out session cannot create users).
type SessionCheck func(ctx context.Context, sid string) (bool, error)

// EndSessions ends every session of a user (refresh families, SSO,
// sessions at the session service).
type EndSessions func(ctx context.Context, userID string) error

// API serves /v1/users.
type API struct {
	users       identity.Store
	alive       SessionCheck
	endSessions EndSessions
	log         *slog.Logger
}

// New returns the API.
func New(users identity.Store, alive SessionCheck, endSessions EndSessions, log *slog.Logger) *API {
	return &API{users: users, alive: alive, endSessions: endSessions, log: log}
}

// Register mounts the routes behind authenticate (authn's middleware), and
// the OpenAPI document.
func (a *API) Register(r gin.IRouter, authenticate func(http.Handler) http.Handler) {
	r.GET(openapi.Path, gin.WrapH(api.Document))
	g := r.Group("/v1/users", server.Adapt(authenticate), a.requireAdmin)
	g.GET("", a.list)
	g.POST("", a.stateful, a.create)
	g.GET("/:id", a.get)
	g.DELETE("/:id", a.stateful, a.disable)
}

func (a *API) requireAdmin(c *gin.Context) {
	p, ok := authn.FromContext(c.Request.Context())
	if !ok || !p.HasRole("admin") || p.Actor != "" {
		server.Abort(c, problem.New(http.StatusForbidden, "the admin role is required"))
		return
	}
	c.Next()
}

func (a *API) stateful(c *gin.Context) {
	p, _ := authn.FromContext(c.Request.Context())
	ok, err := a.alive(c.Request.Context(), p.SessionID)
	if err != nil {
		fail(c, err)
		return
	}
	if !ok {
		authn.SessionEnded(c.Writer, c.Request)
		c.Abort()
		return
	}
	c.Next()
}

type userJSON struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Roles     []string  `json:"roles"`
	Region    string    `json:"region,omitempty"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

func toJSON(u identity.User) userJSON {
	return userJSON{ID: u.ID, Username: u.Username, Roles: u.Roles, Region: u.Region, Disabled: u.Disabled, CreatedAt: u.CreatedAt}
}

func (a *API) list(c *gin.Context) {
	limit := 50
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			server.Abort(c, problem.New(http.StatusBadRequest, "limit must be 1-500"))
			return
		}
		limit = n
	}
	after := c.Query("after")
	if after != "" && !identity.ValidUsername(after) {
		// The cursor is a username; anything else (a NUL byte Postgres
		// cannot hold in text, invalid UTF-8) never reaches the store.
		server.Abort(c, problem.New(http.StatusBadRequest, "after must be a username: the next cursor of the previous page"))
		return
	}
	users, err := a.users.ListUsers(c.Request.Context(), after, limit)
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]userJSON, 0, len(users))
	for _, u := range users {
		out = append(out, toJSON(u))
	}
	next := ""
	if len(users) == limit {
		next = users[len(users)-1].Username
	}
	c.JSON(http.StatusOK, gin.H{"users": out, "next": next})
}

type createRequest struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	Roles    []string `json:"roles"`
	Region   string   `json:"region"`
}

func (a *API) create(c *gin.Context) {
	var req createRequest
	if !server.DecodeJSON(c.Writer, c.Request, &req) {
		return
	}
	u, err := identity.NewUser(uuid.NewString(), identity.NewUserInput(req), time.Now().UTC())
	if err != nil {
		fail(c, err)
		return
	}
	if err := a.users.CreateUser(c.Request.Context(), u); err != nil {
		fail(c, err)
		return
	}
	p, _ := authn.FromContext(c.Request.Context())
	a.log.InfoContext(c.Request.Context(), "user created", "user_id", u.ID, "by", p.Subject)
	c.Header("Location", "/v1/users/"+u.ID)
	c.JSON(http.StatusCreated, toJSON(u))
}

func (a *API) get(c *gin.Context) {
	u, err := a.users.UserByID(c.Request.Context(), c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, toJSON(u))
}

// disable disables a user and ends their sessions: a disabled user's
// refresh tokens, SSO cookie and access tokens (at every stateful check)
// stop working now, not when they expire. Repeating it is harmless, so a
// 503 (session service unreachable) is retried.
func (a *API) disable(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("id")
	if err := a.users.SetDisabled(ctx, id, true); err != nil {
		fail(c, err)
		return
	}
	if err := a.endSessions(ctx, id); err != nil {
		a.log.WarnContext(ctx, "ending a disabled user's sessions failed", "user_id", id, "err", err)
		fail(c, fmt.Errorf("%w: %v", identity.ErrUnavailable, err))
		return
	}
	p, _ := authn.FromContext(ctx)
	a.log.InfoContext(ctx, "user disabled", "user_id", id, "by", p.Subject)
	c.Status(http.StatusNoContent)
}

// fail is the service's one error-to-status mapping.
func fail(c *gin.Context, err error) {
	switch {
	case errors.Is(err, identity.ErrNotFound):
		server.Abort(c, problem.New(http.StatusNotFound, "no such user"))
	case errors.Is(err, identity.ErrConflict):
		server.Abort(c, problem.New(http.StatusConflict, "username already taken"))
	case errors.Is(err, identity.ErrInvalid):
		server.Abort(c, problem.New(http.StatusUnprocessableEntity, err.Error()))
	case errors.Is(err, identity.ErrUnavailable):
		server.Abort(c, problem.New(http.StatusServiceUnavailable, "a dependency is unavailable").WithRetryAfter(time.Second))
	default:
		_ = c.Error(err)
		server.Abort(c, problem.New(http.StatusInternalServerError, "internal error"))
	}
}
