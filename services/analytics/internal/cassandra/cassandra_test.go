package cassandra

import (
	"fmt"
	"io"
	"testing"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

func TestNodeLostRetryRetriesOnlyUnansweredStatements(t *testing.T) {
	p := NodeLostRetry{}
	for _, tc := range []struct {
		name string
		err  error
		want gocql.RetryType
	}{
		{"connection closed under the statement", gocql.ErrConnectionClosed, gocql.RetryNextHost},
		{"node gone (EOF), wrapped", fmt.Errorf("read: %w", io.EOF), gocql.RetryNextHost},
		{"write timeout at the consistency level", &gocql.RequestErrWriteTimeout{}, gocql.Rethrow},
		{"not enough replicas alive", &gocql.RequestErrUnavailable{}, gocql.Rethrow},
		{"read timeout, wrapped", fmt.Errorf("query: %w", &gocql.RequestErrReadTimeout{}), gocql.Rethrow},
	} {
		if got := p.GetRetryType(tc.err); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The driver consults its retry policy only for an idempotent statement,
// and a batch is idempotent only when every entry says so.
func TestBatchesAreRetryable(t *testing.T) {
	b := &gocql.Batch{}
	addIdempotent(b, []stmt{{q: insertEvent}, {q: insertDay}})
	if len(b.Entries) != 2 || !b.IsIdempotent() {
		t.Fatalf("batch of %d entries, idempotent %v: the driver would not retry it on another node", len(b.Entries), b.IsIdempotent())
	}
	b.Query(insertOwner) // what Batch.Query gives
	if b.IsIdempotent() {
		t.Fatal("an entry added by Batch.Query counts as idempotent; the check above proves nothing")
	}
}
