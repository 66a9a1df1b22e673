package testenv

import (
	"path/filepath"
	"testing"
)

// The HA topology must never share a directory or a port with the
// single-node stack, so `make run-ha` and `make test` can run side by side.
func TestHAEnvIsApartFromTheSingleNodeStack(t *testing.T) {
	t.Setenv("STRATA_HA_STACK_DIR", "")
	h, err := loadHAEnv()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(h.Dir) != ".stack-ha" {
		t.Errorf("HA stack dir = %q, want .stack-ha", h.Dir)
	}
	single := map[int]bool{15432: true, 16379: true, 19042: true, 17000: true}
	ports := []int{h.PGPort, h.PGReplicaPort, h.RedisPort, h.RedisReplicaPort, h.CassandraPort}
	seen := map[int]bool{}
	for _, p := range ports {
		if p == 0 || single[p] || seen[p] {
			t.Errorf("port %d: unset, shared with the single-node stack, or used twice (%v)", p, ports)
		}
		seen[p] = true
	}
	if len(h.SentinelAddrs) != 3 || len(h.CassandraNodes) != 3 || h.RedisMasterName == "" {
		t.Errorf("want 3 sentinels, 3 Cassandra nodes and a master name; got %v %v %q", h.SentinelAddrs, h.CassandraNodes, h.RedisMasterName)
	}
}
