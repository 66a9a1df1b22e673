package chaos

import (
	"context"
	"errors"
	"fmt"
)

// HADrills run on the high-availability topology (`make run-ha`,
// deploy/native/ha.sh): each takes away one node of a replicated layer
// under load. Clients may see retried requests, never lost data; the table
// shows how many seconds had errors, which for the failovers is the write
// pause (docs/high-availability.md states the bound).
var HADrills = []Drill{
	// The node stays down through the recovery window and the checks (which
	// so prove that every event reached a quorum without it); it rejoins
	// afterwards, which takes a JVM 25-55 s here, and gets its hints.
	{Name: "cassandra node down (HA)", Doc: "one of the three Cassandra nodes is stopped until after the checks; ingestion and reads go on at LOCAL_QUORUM (2 of 3)",
		Inject:  func(ctx context.Context, d *drillRun) error { return stack(ctx, d, "stop", "cassandra2") },
		Restore: func(ctx context.Context, d *drillRun) error { return stack(ctx, d, "start", "cassandra2") }},
	{Name: "one replica of each service killed (HA)", Doc: "SIGKILL the second replica of auth, ledger, analytics and session; callers eject it and use the first",
		Inject: func(ctx context.Context, d *drillRun) error {
			var errs []error
			for _, s := range services {
				errs = append(errs, d.env.Services.Kill(ctx, s+"-b"))
			}
			return errors.Join(errs...)
		},
		Clear: func(ctx context.Context, d *drillRun) error { return d.env.Services.Start(ctx, "") }},
	{Name: "postgres failover (HA)", Doc: "the primary is stopped and fenced, the streaming replica promoted; services reconnect to the writable node",
		Inject: func(ctx context.Context, d *drillRun) error { return stack(ctx, d, "failover", "postgres") },
		// The old primary comes back as a replica of the new one.
		Clear: func(ctx context.Context, d *drillRun) error {
			return stack(ctx, d, "up", "postgres", "postgres-replica")
		}},
	{Name: "redis failover (HA)", Doc: "the Redis master is stopped; the Sentinels promote the replica and the session service follows them",
		Inject: func(ctx context.Context, d *drillRun) error { return stack(ctx, d, "failover", "redis") },
		// The old master comes back and the Sentinels make it a replica.
		Clear: func(ctx context.Context, d *drillRun) error { return stack(ctx, d, "up", "redis", "redis-replica") }},
}

// stack runs stack.sh with args and wraps its output into the error.
func stack(ctx context.Context, d *drillRun, args ...string) error {
	out, err := d.env.Stack(ctx, args...)
	if err != nil {
		return fmt.Errorf("stack.sh %v: %w: %s", args, err, out)
	}
	return nil
}
