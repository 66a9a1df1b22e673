// Package session is the domain of the session service: SSO sessions (one
// per sign-in at the auth service, holding the user's refresh-token family)
// and the cache-aside service that serves them.
//
// Postgres is the source of truth; Redis is only a cache in front of it
// (cacheaside.go). This package declares the two interfaces it needs, Store
// and Cache, and knows nothing of pgx or go-redis.
package session

import (
	"context"
	"errors"
	"time"
)

// Session is one SSO session.
type Session struct {
	SID        string    `json:"sid"`
	UserID     string    `json:"user_id"`
	FamilyID   string    `json:"family_id"` // refresh-token family bound to this session
	AuthTime   time.Time `json:"auth_time"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// Alive reports whether s is usable at now.
func (s Session) Alive(now time.Time) bool { return now.Before(s.ExpiresAt) }

// New is what a caller supplies to create a session.
type New struct {
	UserID    string
	FamilyID  string
	AuthTime  time.Time
	ExpiresAt time.Time
}

var (
	// ErrNotFound: no such live session (unknown, revoked or expired).
	ErrNotFound = errors.New("session not found")
	// ErrUnavailable: the source of truth cannot be reached; retry later.
	ErrUnavailable = errors.New("session store unavailable")
	// ErrInvalid: the request is malformed.
	ErrInvalid = errors.New("invalid session request")
)

// Store is the source of truth (Postgres). Get and List return only live
// (unrevoked, unexpired) sessions; a revoked or expired one is ErrNotFound.
type Store interface {
	Create(ctx context.Context, s Session) error
	Get(ctx context.Context, sid string) (Session, error)
	Touch(ctx context.Context, sid string, seen, expires time.Time) (Session, error)
	Revoke(ctx context.Context, sid string, at time.Time) error
	ListByUser(ctx context.Context, userID string) ([]Session, error)
}

// Entry is what the cache holds for a sid: a session, or the knowledge that
// there is none (a negative entry).
type Entry struct {
	Session  Session
	Negative bool
}

// Cache is the look-aside cache (Redis). Get reports found=false on a miss.
type Cache interface {
	Get(ctx context.Context, sid string) (e Entry, found bool, err error)
	Set(ctx context.Context, sid string, e Entry, ttl time.Duration) error
	Delete(ctx context.Context, sid string) error
}
