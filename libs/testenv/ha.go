package testenv

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// HAStack describes the high-availability topology of deploy/native/ha.env:
// its own stack directory and ports, apart from the single-node stack.
type HAStack struct {
	Stack
	PGReplicaPort    int
	RedisReplicaPort int
	SentinelAddrs    []string // "127.0.0.1:26381", ...
	RedisMasterName  string
	CassandraNodes   []string // "127.0.0.1", "127.0.0.2", "127.0.0.3"
	env              map[string]string
}

var (
	haOnce sync.Once
	ha     *HAStack
	haErr  error
)

// HAServers are the servers of the HA topology, in stack.sh's start order.
var HAServers = []string{"postgres", "postgres-replica", "redis", "redis-replica", "sentinel", "cassandra", "cassandra2", "cassandra3"}

// StartHAStack runs `stack.sh up` with ha.env for the named servers (the
// whole HA topology when none) and describes it. It fails the test, never
// skips it, when a server cannot be started. The servers this call found
// down are stopped again when the test ends (a CI machine must be left
// with nothing running); those already up (make run-ha) stay up.
func StartHAStack(t testing.TB, servers ...string) *HAStack {
	t.Helper()
	haOnce.Do(func() { ha, haErr = loadHAEnv() })
	if haErr != nil {
		t.Fatal(haErr)
	}
	var started []string
	for _, s := range cmpOr(servers, HAServers) {
		if _, err := ha.Script("pid", s); err != nil {
			started = append(started, s)
		}
	}
	if len(started) > 0 {
		t.Cleanup(func() {
			if out, err := ha.Script(append([]string{"down"}, started...)...); err != nil {
				t.Errorf("stack.sh down %v (HA): %v\n%s", started, err, out)
			}
		})
	}
	if out, err := ha.Script(append([]string{"up"}, servers...)...); err != nil {
		t.Fatalf("stack.sh up %v (HA): %v\n%s", servers, err, out)
	}
	return ha
}

// loadHAEnv sources ha.env in bash and reads back what it exports.
func loadHAEnv() (*HAStack, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("bash", "-c", `source "$1" && env`, "ha", filepath.Join(root, "deploy/native/ha.env")).Output()
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "STRATA_") {
			env[k] = v
		}
	}
	num := func(k string) int { n, _ := strconv.Atoi(env[k]); return n }
	h := &HAStack{env: env, PGReplicaPort: num("STRATA_PG_REPLICA_PORT"), RedisReplicaPort: num("STRATA_REDIS_REPLICA_PORT"),
		RedisMasterName: env["STRATA_REDIS_MASTER_NAME"], CassandraNodes: strings.Split(env["STRATA_CASSANDRA_NODES"], ",")}
	for _, p := range strings.Split(env["STRATA_SENTINEL_PORTS"], ",") {
		h.SentinelAddrs = append(h.SentinelAddrs, "127.0.0.1:"+p)
	}
	dir := env["STRATA_STACK_DIR"]
	h.Stack = Stack{Root: root, Dir: dir, Certs: filepath.Join(dir, "certs"), PGPort: num("STRATA_PG_PORT"),
		RedisPort: num("STRATA_REDIS_PORT"), CassandraPort: num("STRATA_CASSANDRA_PORT")}
	return h, nil
}

// Script runs deploy/native/stack.sh with ha.env's environment.
func (h *HAStack) Script(args ...string) ([]byte, error) {
	cmd := exec.Command("bash", append([]string{filepath.Join(h.Root, "deploy/native/stack.sh")}, args...)...)
	cmd.Env = h.Environ()
	return cmd.CombinedOutput()
}

// MustScript is Script that fails the test on error.
func (h *HAStack) MustScript(t testing.TB, args ...string) {
	t.Helper()
	if out, err := h.Script(args...); err != nil {
		t.Fatalf("stack.sh %v (HA): %v\n%s", args, err, out)
	}
}

// Environ is the process environment with ha.env applied.
func (h *HAStack) Environ() []string {
	env := environWithout(h.env)
	for k, v := range h.env {
		env = append(env, k+"="+v)
	}
	return env
}

// PGNode names the Postgres node listening on port: its stack.sh server
// name, which is also its application_name on the primary.
func (h *HAStack) PGNode(port int) string {
	if port == h.PGPort {
		return "postgres"
	}
	return "postgres-replica"
}

func cmpOr(a, b []string) []string {
	if len(a) > 0 {
		return a
	}
	return b
}

// environWithout is os.Environ minus the keys set in drop.
func environWithout(drop map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); drop[k] == "" {
			env = append(env, kv)
		}
	}
	return env
}
