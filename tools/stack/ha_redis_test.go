package stack

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/strata-ref/strata/libs/testenv"
)

// RedisPauseBound is the longest the cache may be unavailable when its
// master dies: Sentinel's down-after (2 s), agreement and election, the
// promotion, and the client's reconnect.
const RedisPauseBound = 15 * time.Second

// redisNode names the node listening on port.
func redisNode(h *testenv.HAStack, port int) string {
	if port == h.RedisPort {
		return "redis"
	}
	return "redis-replica"
}

func TestRedisSentinelFailover(t *testing.T) {
	h := testenv.StartHAStack(t, "redis", "redis-replica", "sentinel")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tlsConfig := h.Source(t, "session").StoreConfig("127.0.0.1") // every node and Sentinel is 127.0.0.1
	// The test writes its own ha:test:* keys, outside the session user's:
	// it runs as the operator's ACL user (Sentinels have no users).
	admin := h.Password(t, "redis", "admin")

	sentinel := goredis.NewSentinelClient(&goredis.Options{Addr: h.SentinelAddrs[0], TLSConfig: tlsConfig, DialTimeout: time.Second})
	defer sentinel.Close()
	masterPort := func() int {
		addr, err := sentinel.GetMasterAddrByName(ctx, h.RedisMasterName).Result()
		if err != nil || len(addr) != 2 {
			return 0
		}
		p, _ := strconv.Atoi(addr[1])
		return p
	}
	node := func(port int) *goredis.Client {
		return goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), TLSConfig: tlsConfig, DialTimeout: time.Second, MaxRetries: -1,
			Username: "admin", Password: admin})
	}
	oldPort := masterPort()
	if oldPort == 0 {
		t.Fatal("the Sentinels name no master")
	}
	newPort := h.RedisPort + h.RedisReplicaPort - oldPort
	oldNode := redisNode(h, oldPort)
	t.Logf("master %s (:%d), replica :%d", oldNode, oldPort, newPort)

	// The session service's client: Sentinel failover over TLS, no retries.
	rdb := goredis.NewFailoverClient(&goredis.FailoverOptions{MasterName: h.RedisMasterName, SentinelAddrs: h.SentinelAddrs,
		TLSConfig: tlsConfig, DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, MaxRetries: -1,
		Username: "admin", Password: admin})
	defer rdb.Close()
	const keys = 100
	for i := range keys {
		if err := rdb.Set(ctx, fmt.Sprintf("ha:test:%d", i), i, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Replicated before the master dies. Right after `up` (or after an
	// earlier failover) the replica may still be syncing, and on a busy
	// machine its ack can take longer than the service client's 500 ms read
	// timeout; so ask on a connection of its own with a patient timeout:
	// a write, then WAIT on that same connection. Replication is ordered, so
	// its ack covers every key written above.
	waiter := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(oldPort), TLSConfig: tlsConfig,
		Username: "admin", Password: admin, DialTimeout: time.Second, ReadTimeout: 10 * time.Second, PoolSize: 1, MaxRetries: -1})
	defer waiter.Close()
	testenv.WaitFor(t, 90*time.Second, "the replica to acknowledge the writes", func() bool {
		if err := waiter.Set(ctx, "ha:test:synced", 1, time.Hour).Err(); err != nil {
			t.Logf("SET on the master: %v", err)
			return false
		}
		n, err := waiter.Do(ctx, "WAIT", 1, 5000).Int()
		if err != nil || n != 1 {
			t.Logf("WAIT 1: %d replicas acknowledged, %v", n, err)
		}
		return err == nil && n == 1
	})

	// Serve reads and writes every 20 ms across the failover.
	var (
		mu     sync.Mutex
		acked  []testenv.Ack
		failed int
		lastEr error
	)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k := "ha:live:" + strconv.FormatInt(i, 10)
			err := rdb.Set(ctx, k, i, time.Hour).Err()
			if err == nil {
				err = rdb.Get(ctx, k).Err()
			}
			mu.Lock()
			if err == nil {
				acked = append(acked, testenv.Ack{ID: i, At: time.Now()})
			} else {
				failed++
				lastEr = err
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)

	// Kill the master (SIGKILL: a crash, not a shutdown).
	out, err := h.Script("pid", oldNode)
	pid, perr := strconv.Atoi(strings.TrimSpace(lastLine(string(out))))
	if err != nil || perr != nil {
		close(stop)
		<-done
		t.Fatalf("stack.sh pid %s: %v %v\n%s", oldNode, err, perr, out)
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 60*time.Second, "the Sentinels to promote the replica", func() bool { return masterPort() == newPort })
	promoted := time.Since(killed)
	testenv.WaitFor(t, 30*time.Second, "the client to serve from the new master", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) > 0 && acked[len(acked)-1].At.After(killed) && time.Since(testenv.FirstAfter(acked, killed)) > time.Second
	})
	close(stop)
	<-done
	mu.Lock()
	pause := testenv.LongestPause(acked)
	t.Logf("redis failover: promoted after %s; %d operations served, %d failed (last: %v); longest pause %s",
		promoted.Round(time.Millisecond), len(acked), failed, lastEr, pause.Round(time.Millisecond))
	fmt.Printf("redis failover: promotion %s after the kill, client pause %s (bound %s)\n",
		promoted.Round(time.Millisecond), pause.Round(time.Millisecond), RedisPauseBound)
	mu.Unlock()
	if pause > RedisPauseBound {
		t.Errorf("the client paused %s, over the bound %s", pause, RedisPauseBound)
	}

	// What was replicated before the crash is on the new master.
	for i := range keys {
		if v, err := rdb.Get(ctx, fmt.Sprintf("ha:test:%d", i)).Int(); err != nil || v != i {
			t.Fatalf("ha:test:%d after the failover = %d, %v", i, v, err)
		}
	}

	// The old master, restarted, rejoins as a replica of the new master.
	if out, err := h.Script("start", oldNode); err != nil {
		t.Fatalf("stack.sh start %s: %v\n%s", oldNode, err, out)
	}
	old := node(oldPort)
	defer old.Close()
	testenv.WaitFor(t, 30*time.Second, "the old master to replicate the new one", func() bool {
		info, err := old.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "role:slave") &&
			strings.Contains(info, "master_port:"+strconv.Itoa(newPort)) && strings.Contains(info, "master_link_status:up")
	})
	if err := old.Set(ctx, "ha:test:old", 1, time.Minute).Err(); err == nil || !strings.Contains(err.Error(), "READONLY") {
		t.Errorf("write on the old master: %v, want READONLY", err)
	}
	testenv.WaitFor(t, 30*time.Second, "the Sentinels to list the old master as a healthy replica", func() bool {
		replicas, err := sentinel.Replicas(ctx, h.RedisMasterName).Result()
		if err != nil {
			return false
		}
		for _, r := range replicas {
			if r["port"] == strconv.Itoa(oldPort) && !strings.Contains(r["flags"], "down") && !strings.Contains(r["flags"], "disconnected") {
				return true
			}
		}
		return false
	})
	if err := rdb.Set(ctx, "ha:test:after", 1, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "a write to reach the rejoined replica", func() bool {
		return old.Get(ctx, "ha:test:after").Err() == nil
	})
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
