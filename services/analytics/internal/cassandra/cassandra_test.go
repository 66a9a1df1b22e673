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
