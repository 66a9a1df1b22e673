// Package postgres is the session service's source of truth: session.Store
// on a pgx pool. SQL is visible as constants; driver errors become the
// domain's sentinel errors here and nowhere else.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/strata-ref/strata/services/session/internal/session"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations is the embedded schema, applied by pgstore.Open at start.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// Store implements session.Store.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var _ session.Store = (*Store)(nil)

// New returns a Store on pool; now is the clock that decides liveness.
func New(pool *pgxpool.Pool, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{pool: pool, now: now}
}

const cols = `sid, user_id, family_id, auth_time, created_at, last_seen_at, expires_at`

func scan(row pgx.Row) (session.Session, error) {
	var s session.Session
	err := row.Scan(&s.SID, &s.UserID, &s.FamilyID, &s.AuthTime, &s.CreatedAt, &s.LastSeenAt, &s.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, session.ErrNotFound
	}
	return s, err
}

// Create inserts a new session.
func (st *Store) Create(ctx context.Context, s session.Session) error {
	const q = `INSERT INTO sessions (` + cols + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	_, err := st.pool.Exec(ctx, q, s.SID, s.UserID, s.FamilyID, s.AuthTime, s.CreatedAt, s.LastSeenAt, s.ExpiresAt)
	if err != nil {
		return fmt.Errorf("insert session: %w", err)
	}
	return nil
}

// Get returns a live session.
func (st *Store) Get(ctx context.Context, sid string) (session.Session, error) {
	const q = `SELECT ` + cols + ` FROM sessions WHERE sid = $1 AND revoked_at IS NULL AND expires_at > $2`
	s, err := scan(st.pool.QueryRow(ctx, q, sid, st.now()))
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		return s, fmt.Errorf("select session: %w", err)
	}
	return s, err
}

// Touch records activity and moves the expiry of a live session.
func (st *Store) Touch(ctx context.Context, sid string, seen, expires time.Time) (session.Session, error) {
	const q = `UPDATE sessions SET last_seen_at = $2, expires_at = $3
	           WHERE sid = $1 AND revoked_at IS NULL AND expires_at > $2
	           RETURNING ` + cols
	s, err := scan(st.pool.QueryRow(ctx, q, sid, seen, expires))
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		return s, fmt.Errorf("touch session: %w", err)
	}
	return s, err
}

// Revoke marks a live session revoked; revoking twice is not an error, an
// unknown sid is.
func (st *Store) Revoke(ctx context.Context, sid string, at time.Time) error {
	const q = `UPDATE sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE sid = $1`
	tag, err := st.pool.Exec(ctx, q, sid, at)
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return session.ErrNotFound
	}
	return nil
}

// ListByUser returns the user's live sessions, newest first.
func (st *Store) ListByUser(ctx context.Context, userID string) ([]session.Session, error) {
	const q = `SELECT ` + cols + ` FROM sessions
	           WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
	           ORDER BY created_at DESC LIMIT 100`
	rows, err := st.pool.Query(ctx, q, userID, st.now())
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (session.Session, error) { return scan(r) })
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// Reap deletes sessions that expired or were revoked more than grace ago,
// in batches, and returns how many it removed.
func (st *Store) Reap(ctx context.Context, grace time.Duration) (int64, error) {
	const q = `DELETE FROM sessions WHERE sid IN (
	             SELECT sid FROM sessions WHERE expires_at < $1 OR revoked_at < $1 LIMIT 1000)`
	var total int64
	for {
		tag, err := st.pool.Exec(ctx, q, st.now().Add(-grace))
		if err != nil {
			return total, fmt.Errorf("reap sessions: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 1000 {
			return total, nil
		}
	}
}
