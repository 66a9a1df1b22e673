// Package redis is the session service's cache: session.Cache on go-redis
// over TLS. Values are JSON; a negative entry is the single byte "-".
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/strata-ref/strata/services/session/internal/session"
)

// Cache implements session.Cache.
type Cache struct{ rdb goredis.UniversalClient }

var _ session.Cache = (*Cache)(nil)

// New wraps a client (single node, or Sentinel failover in the HA topology).
func New(rdb goredis.UniversalClient) *Cache { return &Cache{rdb: rdb} }

func key(sid string) string { return "session:" + sid }

const negative = "-"

// Get reads one entry; found is false on a miss.
func (c *Cache) Get(ctx context.Context, sid string) (session.Entry, bool, error) {
	b, err := c.rdb.Get(ctx, key(sid)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return session.Entry{}, false, nil
	}
	if err != nil {
		return session.Entry{}, false, fmt.Errorf("redis get: %w", err)
	}
	if string(b) == negative {
		return session.Entry{Negative: true}, true, nil
	}
	var s session.Session
	if err := json.Unmarshal(b, &s); err != nil {
		return session.Entry{}, false, nil // a corrupt entry is a miss; the fill overwrites it
	}
	return session.Entry{Session: s}, true, nil
}

// Set writes one entry with its TTL.
func (c *Cache) Set(ctx context.Context, sid string, e session.Entry, ttl time.Duration) error {
	var val []byte = []byte(negative)
	if !e.Negative {
		var err error
		if val, err = json.Marshal(e.Session); err != nil {
			return err
		}
	}
	if err := c.rdb.Set(ctx, key(sid), val, ttl).Err(); err != nil {
		return fmt.Errorf("redis set: %w", err)
	}
	return nil
}

// Delete removes the entry (invalidation after a write).
func (c *Cache) Delete(ctx context.Context, sid string) error {
	if err := c.rdb.Del(ctx, key(sid)).Err(); err != nil {
		return fmt.Errorf("redis del: %w", err)
	}
	return nil
}
