// Package postgres is the auth service's database (Postgres, database
// auth): users and roles, OAuth clients, authorization requests and codes,
// access-token records, refresh tokens with their families, and signing
// keys. SQL is visible as constants; driver errors become the domain's
// sentinel errors here and nowhere else. The schema is embedded and applied
// at start (goose).
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/strata-ref/strata/services/auth/internal/identity"
	"github.com/strata-ref/strata/services/auth/internal/keys"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations is the embedded schema, applied by pgstore.Open at start.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// Store implements identity.Store, identity.TokenStore and keys.Store.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var (
	_ identity.Store      = (*Store)(nil)
	_ identity.TokenStore = (*Store)(nil)
	_ keys.Store          = (*Store)(nil)
)

// New returns a Store on pool.
func New(pool *pgxpool.Pool, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{pool: pool, now: now}
}

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return identity.ErrNotFound
	}
	return err
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// validUUID keeps malformed ids from reaching a uuid column (which would be
// a 500 instead of a 404).
func validUUID(s string) bool { _, err := uuid.Parse(s); return err == nil }

// ---- users ----

const userCols = `u.id::text, u.username, u.password_hash, u.region, u.disabled, u.created_at,
  COALESCE((SELECT array_agg(r.role ORDER BY r.role) FROM user_roles r WHERE r.user_id = u.id), '{}')`

func scanUser(row pgx.Row) (identity.User, error) {
	var u identity.User
	err := row.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.Region, &u.Disabled, &u.CreatedAt, &u.Roles)
	return u, notFound(err)
}

// UserByID returns a user.
func (s *Store) UserByID(ctx context.Context, id string) (identity.User, error) {
	if !validUUID(id) {
		return identity.User{}, identity.ErrNotFound
	}
	const q = `SELECT ` + userCols + ` FROM users u WHERE u.id = $1`
	u, err := scanUser(s.pool.QueryRow(ctx, q, id))
	if err != nil && !errors.Is(err, identity.ErrNotFound) {
		return u, fmt.Errorf("select user: %w", err)
	}
	return u, err
}

// UserByUsername returns a user.
func (s *Store) UserByUsername(ctx context.Context, username string) (identity.User, error) {
	const q = `SELECT ` + userCols + ` FROM users u WHERE u.username = $1`
	u, err := scanUser(s.pool.QueryRow(ctx, q, username))
	if err != nil && !errors.Is(err, identity.ErrNotFound) {
		return u, fmt.Errorf("select user: %w", err)
	}
	return u, err
}

// CreateUser inserts u with its roles; ErrConflict if the username is taken.
func (s *Store) CreateUser(ctx context.Context, u identity.User) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		const q = `INSERT INTO users (id, username, password_hash, region, disabled, created_at) VALUES ($1, $2, $3, $4, $5, $6)`
		if _, err := tx.Exec(ctx, q, u.ID, u.Username, u.PasswordHash, u.Region, u.Disabled, u.CreatedAt); err != nil {
			if isUniqueViolation(err) {
				return identity.ErrConflict
			}
			return fmt.Errorf("insert user: %w", err)
		}
		const qr = `INSERT INTO user_roles (user_id, role) SELECT $1, unnest($2::text[])`
		if _, err := tx.Exec(ctx, qr, u.ID, u.Roles); err != nil {
			return fmt.Errorf("insert roles: %w", err)
		}
		return nil
	})
}

// UpsertUser creates u or resets its password, roles and region (seeding).
// It never touches disabled: re-seeding must not bring back a user an
// operator disabled.
func (s *Store) UpsertUser(ctx context.Context, u identity.User) (string, error) {
	var id string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		const q = `INSERT INTO users (id, username, password_hash, region, created_at) VALUES ($1, $2, $3, $4, $5)
		           ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, region = EXCLUDED.region
		           RETURNING id::text`
		if err := tx.QueryRow(ctx, q, u.ID, u.Username, u.PasswordHash, u.Region, u.CreatedAt).Scan(&id); err != nil {
			return fmt.Errorf("upsert user: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM user_roles WHERE user_id = $1`, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO user_roles (user_id, role) SELECT $1, unnest($2::text[])`, id, u.Roles)
		return err
	})
	return id, err
}

// BulkCreateUsers inserts many users with one COPY per table, skipping
// none: the caller picks usernames that do not exist yet.
func (s *Store) BulkCreateUsers(ctx context.Context, users []identity.User) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// A temporary table lets existing usernames be skipped instead of
		// failing the whole COPY.
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE seed_users (id uuid, username text, password_hash text, region text, role text) ON COMMIT DROP`); err != nil {
			return err
		}
		rows := make([][]any, len(users))
		for i, u := range users {
			rows[i] = []any{u.ID, u.Username, u.PasswordHash, u.Region, u.Roles[0]}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"seed_users"}, []string{"id", "username", "password_hash", "region", "role"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy users: %w", err)
		}
		const q = `WITH ins AS (
		             INSERT INTO users (id, username, password_hash, region)
		             SELECT id, username, password_hash, region FROM seed_users
		             ON CONFLICT (username) DO NOTHING RETURNING id)
		           INSERT INTO user_roles (user_id, role)
		           SELECT s.id, s.role FROM seed_users s JOIN ins ON ins.id = s.id`
		_, err := tx.Exec(ctx, q)
		return err
	})
}

// ListUsers pages through users ordered by username.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]identity.User, error) {
	const q = `SELECT ` + userCols + ` FROM users u WHERE u.username > $1 ORDER BY u.username LIMIT $2`
	rows, err := s.pool.Query(ctx, q, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []identity.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// SetDisabled disables or enables a user.
func (s *Store) SetDisabled(ctx context.Context, id string, disabled bool) error {
	if !validUUID(id) {
		return identity.ErrNotFound
	}
	tag, err := s.pool.Exec(ctx, `UPDATE users SET disabled = $2 WHERE id = $1`, id, disabled)
	if err != nil {
		return fmt.Errorf("update user: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return identity.ErrNotFound
	}
	return nil
}

// ---- clients ----

const clientCols = `id, kind, auth_method, COALESCE(spiffe_id, ''), redirect_uris, post_logout_redirect_uris,
  grant_types, audiences, exchange_audiences, scopes, jwks`

func scanClient(row pgx.Row) (identity.Client, error) {
	var c identity.Client
	var kind, method string
	err := row.Scan(&c.ID, &kind, &method, &c.SPIFFEID, &c.RedirectURIs, &c.PostLogoutRedirectURIs,
		&c.GrantTypes, &c.Audiences, &c.ExchangeAudiences, &c.Scopes, &c.JWKS)
	c.Kind, c.AuthMethod = identity.ClientKind(kind), identity.AuthMethod(method)
	return c, notFound(err)
}

// ClientByID returns a client.
func (s *Store) ClientByID(ctx context.Context, id string) (identity.Client, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, `SELECT `+clientCols+` FROM clients WHERE id = $1`, id))
	if err != nil && !errors.Is(err, identity.ErrNotFound) {
		return c, fmt.Errorf("select client: %w", err)
	}
	return c, err
}

// ClientBySPIFFEID returns the tls_client_auth client with that identity.
func (s *Store) ClientBySPIFFEID(ctx context.Context, spiffeID string) (identity.Client, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, `SELECT `+clientCols+` FROM clients WHERE spiffe_id = $1`, spiffeID))
	if err != nil && !errors.Is(err, identity.ErrNotFound) {
		return c, fmt.Errorf("select client: %w", err)
	}
	return c, err
}

// UpsertClient registers c or replaces its configuration.
func (s *Store) UpsertClient(ctx context.Context, c identity.Client) error {
	var spiffe *string
	if c.SPIFFEID != "" {
		spiffe = &c.SPIFFEID
	}
	jwks := c.JWKS
	if len(jwks) == 0 {
		jwks = []byte(`{"keys":[]}`)
	}
	nz := func(v []string) []string {
		if v == nil {
			return []string{}
		}
		return v
	}
	const q = `INSERT INTO clients (id, kind, auth_method, spiffe_id, redirect_uris, post_logout_redirect_uris,
	             grant_types, audiences, exchange_audiences, scopes, jwks) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
	           ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, auth_method = EXCLUDED.auth_method,
	             spiffe_id = EXCLUDED.spiffe_id, redirect_uris = EXCLUDED.redirect_uris,
	             post_logout_redirect_uris = EXCLUDED.post_logout_redirect_uris, grant_types = EXCLUDED.grant_types,
	             audiences = EXCLUDED.audiences, exchange_audiences = EXCLUDED.exchange_audiences,
	             scopes = EXCLUDED.scopes, jwks = EXCLUDED.jwks`
	_, err := s.pool.Exec(ctx, q, c.ID, string(c.Kind), string(c.AuthMethod), spiffe, nz(c.RedirectURIs), nz(c.PostLogoutRedirectURIs),
		nz(c.GrantTypes), nz(c.Audiences), nz(c.ExchangeAudiences), nz(c.Scopes), jwks)
	if err != nil {
		return fmt.Errorf("upsert client %s: %w", c.ID, err)
	}
	return nil
}

// ---- auth requests and codes ----

const arCols = `id::text, client_id, params, COALESCE(user_id::text, ''), COALESCE(sid, ''), COALESCE(family_id::text, ''),
  COALESCE(auth_time, 'epoch'), done, expires_at`

func scanAuthRequest(row pgx.Row) (identity.AuthRequest, error) {
	var r identity.AuthRequest
	var params []byte
	err := row.Scan(&r.ID, &r.ClientID, &params, &r.UserID, &r.SID, &r.FamilyID, &r.AuthTime, &r.Done, &r.ExpiresAt)
	if err != nil {
		return r, notFound(err)
	}
	return r, json.Unmarshal(params, &r.Params)
}

// CreateAuthRequest stores a new authorization request.
func (s *Store) CreateAuthRequest(ctx context.Context, r identity.AuthRequest) error {
	params, err := json.Marshal(r.Params)
	if err != nil {
		return err
	}
	const q = `INSERT INTO auth_requests (id, client_id, params, expires_at) VALUES ($1, $2, $3, $4)`
	if _, err := s.pool.Exec(ctx, q, r.ID, r.ClientID, params, r.ExpiresAt); err != nil {
		return fmt.Errorf("insert auth request: %w", err)
	}
	return nil
}

// AuthRequestByID returns an unexpired authorization request whose code
// (if it got one) has not been redeemed.
func (s *Store) AuthRequestByID(ctx context.Context, id string) (identity.AuthRequest, error) {
	if !validUUID(id) {
		return identity.AuthRequest{}, identity.ErrNotFound
	}
	const q = `SELECT ` + arCols + ` FROM auth_requests WHERE id = $1 AND expires_at > $2 AND code_used_at IS NULL`
	return scanAuthRequest(s.pool.QueryRow(ctx, q, id, s.now()))
}

// AuthRequestByCodeHash returns the request an unredeemed, unexpired code
// was issued for. A code already redeemed gives the request and
// identity.ErrReused.
func (s *Store) AuthRequestByCodeHash(ctx context.Context, hash []byte) (identity.AuthRequest, error) {
	const q = `SELECT ` + arCols + `, code_used_at IS NOT NULL FROM auth_requests WHERE code_hash = $1 AND expires_at > $2`
	var r identity.AuthRequest
	var params []byte
	var used bool
	err := s.pool.QueryRow(ctx, q, hash, s.now()).Scan(&r.ID, &r.ClientID, &params, &r.UserID, &r.SID, &r.FamilyID, &r.AuthTime,
		&r.Done, &r.ExpiresAt, &used)
	if err != nil {
		return r, notFound(err)
	}
	if err := json.Unmarshal(params, &r.Params); err != nil {
		return r, err
	}
	if used {
		return r, identity.ErrReused
	}
	return r, nil
}

// ConsumeCode marks a code redeemed, atomically: of two redemptions at
// once exactly one gets nil, the other identity.ErrReused. The request
// stays as a tombstone for tombstone (so later reuse is recognised), then
// the reaper deletes it.
func (s *Store) ConsumeCode(ctx context.Context, hash []byte, tombstone time.Duration) error {
	now := s.now()
	const q = `UPDATE auth_requests SET code_used_at = $2, expires_at = GREATEST(expires_at, $3)
	           WHERE code_hash = $1 AND code_used_at IS NULL AND expires_at > $2`
	tag, err := s.pool.Exec(ctx, q, hash, now, now.Add(tombstone))
	if err != nil {
		return fmt.Errorf("consume code: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return identity.ErrReused
	}
	return nil
}

// CompleteAuthRequest records who authenticated, in which session.
func (s *Store) CompleteAuthRequest(ctx context.Context, id, userID, sid, familyID string, authTime time.Time) error {
	const q = `UPDATE auth_requests SET user_id = $2, sid = $3, family_id = $4, auth_time = $5, done = true
	           WHERE id = $1 AND expires_at > $6 AND NOT done`
	tag, err := s.pool.Exec(ctx, q, id, userID, sid, familyID, authTime, s.now())
	if err != nil {
		return fmt.Errorf("complete auth request: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return identity.ErrNotFound
	}
	return nil
}

// SaveCodeHash binds a code to its request; the code lives one minute.
func (s *Store) SaveCodeHash(ctx context.Context, id string, hash []byte) error {
	const q = `UPDATE auth_requests SET code_hash = $2, expires_at = LEAST(expires_at, $3) WHERE id = $1 AND done AND code_used_at IS NULL`
	tag, err := s.pool.Exec(ctx, q, id, hash, s.now().Add(time.Minute))
	if err != nil {
		return fmt.Errorf("save code: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return identity.ErrNotFound
	}
	return nil
}

// DeleteAuthRequest removes a request that has no redeemed code; a
// redeemed one stays as the code's tombstone until the reaper.
func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	if !validUUID(id) {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM auth_requests WHERE id = $1 AND code_used_at IS NULL`, id); err != nil {
		return fmt.Errorf("delete auth request: %w", err)
	}
	return nil
}

// Reap deletes what has expired: authorization requests (most never get
// a code: every unauthenticated /oauth2/authorize makes one) and code
// tombstones, access-token records, refresh tokens, and the families that
// have no token left and are older than keep. Each table is deleted in
// batches, so a large backlog does not hold one long transaction.
func (s *Store) Reap(ctx context.Context, keep time.Duration) (identity.Reaped, error) {
	now := s.now()
	var out identity.Reaped
	const batch = 5000
	for _, step := range []struct {
		n *int64
		q string
		a time.Time
	}{
		{&out.AuthRequests, `DELETE FROM auth_requests WHERE id IN (SELECT id FROM auth_requests WHERE expires_at < $1 LIMIT 5000)`, now},
		{&out.AccessTokens, `DELETE FROM access_tokens WHERE id IN (SELECT id FROM access_tokens WHERE expires_at < $1 LIMIT 5000)`, now},
		{&out.RefreshTokens, `DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM refresh_tokens WHERE expires_at < $1 LIMIT 5000)`, now},
		{&out.Families, `DELETE FROM refresh_families WHERE id IN (SELECT f.id FROM refresh_families f WHERE f.created_at < $1
		   AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id) LIMIT 5000)`, now.Add(-keep)},
	} {
		for {
			tag, err := s.pool.Exec(ctx, step.q, step.a)
			if err != nil {
				return out, fmt.Errorf("reap: %w", err)
			}
			*step.n += tag.RowsAffected()
			if tag.RowsAffected() < batch {
				break
			}
		}
	}
	return out, nil
}

// ---- access tokens ----

// SaveAccessToken records an issued access token.
func (s *Store) SaveAccessToken(ctx context.Context, t identity.AccessToken) error {
	const q = `INSERT INTO access_tokens (id, subject, client_id, sid, audiences, scopes, roles, region, actor, issued_at, expires_at)
	           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`
	_, err := s.pool.Exec(ctx, q, t.ID, t.Subject, t.ClientID, t.SID, t.Audiences, nonNil(t.Scopes), nonNil(t.Roles), t.Region, t.Actor, t.IssuedAt, t.ExpiresAt)
	if err != nil {
		return fmt.Errorf("insert access token: %w", err)
	}
	return nil
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// AccessTokenByID returns a token record.
func (s *Store) AccessTokenByID(ctx context.Context, id string) (identity.AccessToken, error) {
	if !validUUID(id) {
		return identity.AccessToken{}, identity.ErrNotFound
	}
	const q = `SELECT id::text, subject, client_id, sid, audiences, scopes, roles, region, actor, issued_at, expires_at, revoked_at IS NOT NULL
	           FROM access_tokens WHERE id = $1`
	var t identity.AccessToken
	err := s.pool.QueryRow(ctx, q, id).Scan(&t.ID, &t.Subject, &t.ClientID, &t.SID, &t.Audiences, &t.Scopes, &t.Roles, &t.Region,
		&t.Actor, &t.IssuedAt, &t.ExpiresAt, &t.Revoked)
	return t, notFound(err)
}

// RevokeAccessToken marks a token revoked.
func (s *Store) RevokeAccessToken(ctx context.Context, id string) error {
	if !validUUID(id) {
		return nil
	}
	_, err := s.pool.Exec(ctx, `UPDATE access_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, s.now())
	return err
}

// RevokeAccessTokensBySID marks every access token of a session revoked.
func (s *Store) RevokeAccessTokensBySID(ctx context.Context, sid string) error {
	if sid == "" {
		return nil
	}
	_, err := s.pool.Exec(ctx, `UPDATE access_tokens SET revoked_at = $2 WHERE sid = $1 AND revoked_at IS NULL`, sid, s.now())
	return err
}

// ---- refresh tokens and families ----

// CreateFamily starts the refresh-token family of a session, with the
// hash of its SSO cookie secret.
func (s *Store) CreateFamily(ctx context.Context, f identity.Family) error {
	const q = `INSERT INTO refresh_families (id, sid, user_id, sso_hash, created_at) VALUES ($1, $2, $3, $4, $5)`
	if _, err := s.pool.Exec(ctx, q, f.ID, f.SID, f.UserID, f.SSOHash, s.now()); err != nil {
		return fmt.Errorf("insert family: %w", err)
	}
	return nil
}

// FamilyBySSOHash returns the live family whose SSO cookie secret hashes to
// hash.
func (s *Store) FamilyBySSOHash(ctx context.Context, hash []byte) (identity.Family, error) {
	var f identity.Family
	if len(hash) == 0 {
		return f, identity.ErrNotFound
	}
	const q = `SELECT id::text, sid, user_id::text, sso_hash FROM refresh_families WHERE sso_hash = $1 AND revoked_at IS NULL`
	err := s.pool.QueryRow(ctx, q, hash).Scan(&f.ID, &f.SID, &f.UserID, &f.SSOHash)
	return f, notFound(err)
}

const rtInsert = `INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, sid, scopes, amr, auth_time, expires_at, resources)
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`

func rtArgs(t identity.RefreshToken) []any {
	return []any{t.Hash, t.FamilyID, t.ClientID, t.UserID, t.SID, nonNil(t.Scopes), nonNil(t.AMR), t.AuthTime, t.ExpiresAt, nonNil(t.Resources)}
}

// InsertRefreshToken stores the first token of a grant.
func (s *Store) InsertRefreshToken(ctx context.Context, t identity.RefreshToken) error {
	if _, err := s.pool.Exec(ctx, rtInsert, rtArgs(t)...); err != nil {
		return fmt.Errorf("insert refresh token: %w", err)
	}
	return nil
}

// RefreshTokenByHash returns a refresh token with its family's state.
func (s *Store) RefreshTokenByHash(ctx context.Context, hash []byte) (identity.RefreshToken, error) {
	const q = `SELECT t.token_hash, t.family_id::text, t.client_id, t.user_id::text, t.sid, t.scopes, t.amr, t.auth_time, t.state, t.expires_at,
	                  f.revoked_at IS NOT NULL, t.resources
	           FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.token_hash = $1`
	var t identity.RefreshToken
	err := s.pool.QueryRow(ctx, q, hash).Scan(&t.Hash, &t.FamilyID, &t.ClientID, &t.UserID, &t.SID, &t.Scopes, &t.AMR, &t.AuthTime,
		&t.State, &t.ExpiresAt, &t.FamilyRevoked, &t.Resources)
	return t, notFound(err)
}

// RotateRefreshToken retires old and stores next in one transaction. The
// conditional UPDATE is the race guard: of two requests presenting the same
// token at once, exactly one sees it active.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash []byte, next identity.RefreshToken) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		const q = `UPDATE refresh_tokens t SET state = 'rotated' FROM refresh_families f
		           WHERE t.token_hash = $1 AND t.state = 'active' AND f.id = t.family_id AND f.revoked_at IS NULL`
		tag, err := tx.Exec(ctx, q, oldHash)
		if err != nil {
			return fmt.Errorf("rotate refresh token: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return identity.ErrReused
		}
		if _, err := tx.Exec(ctx, rtInsert, rtArgs(next)...); err != nil {
			return fmt.Errorf("insert refresh token: %w", err)
		}
		return nil
	})
}

// RevokeFamily revokes a family and every token in it.
func (s *Store) RevokeFamily(ctx context.Context, familyID, reason string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE refresh_families SET revoked_at = $2, revoke_reason = $3 WHERE id = $1 AND revoked_at IS NULL`,
			familyID, s.now(), reason); err != nil {
			return fmt.Errorf("revoke family: %w", err)
		}
		_, err := tx.Exec(ctx, `UPDATE refresh_tokens SET state = 'revoked' WHERE family_id = $1 AND state <> 'revoked'`, familyID)
		return err
	})
}

// RevokeFamiliesBySID revokes the families of a session (logout).
func (s *Store) RevokeFamiliesBySID(ctx context.Context, sid, reason string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE refresh_families SET revoked_at = $2, revoke_reason = $3 WHERE sid = $1 AND revoked_at IS NULL RETURNING id`,
			sid, s.now(), reason)
		if err != nil {
			return fmt.Errorf("revoke families: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE refresh_tokens SET state = 'revoked' WHERE family_id = ANY($1) AND state <> 'revoked'`, ids)
		return err
	})
}

// RevokeFamiliesByUser revokes every live family of a user and returns
// their sessions (a disabled user).
func (s *Store) RevokeFamiliesByUser(ctx context.Context, userID, reason string) ([]string, error) {
	if !validUUID(userID) {
		return nil, nil
	}
	var sids []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE refresh_families SET revoked_at = $2, revoke_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL
		                            RETURNING id, sid`, userID, s.now(), reason)
		if err != nil {
			return fmt.Errorf("revoke families: %w", err)
		}
		var ids []uuid.UUID
		for rows.Next() {
			var id uuid.UUID
			var sid string
			if err := rows.Scan(&id, &sid); err != nil {
				rows.Close()
				return err
			}
			ids, sids = append(ids, id), append(sids, sid)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE refresh_tokens SET state = 'revoked' WHERE family_id = ANY($1) AND state <> 'revoked'`, ids)
		return err
	})
	return sids, err
}

// RevokeRefreshToken revokes one token (RFC 7009).
func (s *Store) RevokeRefreshToken(ctx context.Context, hash []byte) error {
	_, err := s.pool.Exec(ctx, `UPDATE refresh_tokens SET state = 'revoked' WHERE token_hash = $1`, hash)
	return err
}

// ---- signing keys ----

// SigningKeys returns every key not removed.
func (s *Store) SigningKeys(ctx context.Context) ([]keys.Record, error) {
	const q = `SELECT id, state, public_jwk, sealed, created_at, publish_until FROM signing_keys WHERE state <> 'removed' ORDER BY created_at`
	rows, err := s.pool.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("select keys: %w", err)
	}
	defer rows.Close()
	var out []keys.Record
	for rows.Next() {
		var r keys.Record
		var state string
		if err := rows.Scan(&r.ID, &state, &r.PublicJWK, &r.Sealed, &r.CreatedAt, &r.PublishUntil); err != nil {
			return nil, err
		}
		r.State = keys.State(state)
		out = append(out, r)
	}
	return out, rows.Err()
}

// RotateKeys runs fn over the keys under a table lock, so two rotations
// (two replicas starting, or a rotation during a start) serialise.
func (s *Store) RotateKeys(ctx context.Context, fn func([]keys.Record) ([]keys.Record, error)) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE signing_keys IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		const q = `SELECT id, state, public_jwk, sealed, created_at, publish_until FROM signing_keys WHERE state <> 'removed'`
		rows, err := tx.Query(ctx, q)
		if err != nil {
			return err
		}
		var before []keys.Record
		for rows.Next() {
			var r keys.Record
			var state string
			if err := rows.Scan(&r.ID, &state, &r.PublicJWK, &r.Sealed, &r.CreatedAt, &r.PublishUntil); err != nil {
				rows.Close()
				return err
			}
			r.State = keys.State(state)
			before = append(before, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		after, err := fn(before)
		if err != nil {
			return err
		}
		// Demote first so the one-current/one-next unique indexes hold at
		// every statement.
		if _, err := tx.Exec(ctx, `UPDATE signing_keys SET state = 'retired' WHERE state IN ('current', 'next')`); err != nil {
			return err
		}
		for _, r := range after {
			const up = `INSERT INTO signing_keys (id, state, public_jwk, sealed, created_at, publish_until) VALUES ($1, $2, $3, $4, $5, $6)
			            ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, sealed = EXCLUDED.sealed, publish_until = EXCLUDED.publish_until`
			if _, err := tx.Exec(ctx, up, r.ID, string(r.State), r.PublicJWK, r.Sealed, r.CreatedAt, r.PublishUntil); err != nil {
				return fmt.Errorf("write key %s: %w", r.ID, err)
			}
		}
		return nil
	})
}
