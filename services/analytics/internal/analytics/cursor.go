package analytics

import (
	"encoding/base64"
	"encoding/json"
	"time"
)

// The activity cursor is opaque to clients: base64url of a small JSON
// document holding the account it belongs to, the day partition and
// Cassandra's paging state inside that partition. Binding it to the account
// means a cursor cannot be replayed against another account's activity.
type cursor struct {
	V       int    `json:"v"`
	Account string `json:"a"`
	Day     string `json:"d"`
	State   []byte `json:"s,omitempty"`
}

const maxCursorBytes = 2048

func encodeCursor(accountID string, p Position) string {
	if p.IsZero() {
		return ""
	}
	b, _ := json.Marshal(cursor{V: 1, Account: accountID, Day: p.Day.Format(dayLayout), State: p.State})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(accountID, s string) (Position, error) {
	if s == "" {
		return Position{}, nil
	}
	invalid := bad(-1, "page", "not a cursor from this listing")
	if len(s) > maxCursorBytes {
		return Position{}, invalid
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Position{}, invalid
	}
	var c cursor
	if json.Unmarshal(b, &c) != nil || c.V != 1 || c.Account != accountID {
		return Position{}, invalid
	}
	day, err := time.Parse(dayLayout, c.Day)
	if err != nil {
		return Position{}, invalid
	}
	return Position{Day: day, State: c.State}, nil
}
