package vmcpkeepalive

import (
	"context"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

func TestSingleNodePairLockExcludesAndReleasesByToken(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "golock"})
	ctx := context.Background()
	held, outcome, err := c.TryPairLock(ctx, "s1", "b1", 5*time.Second)
	if err != nil || outcome != LockAcquired || !held.IsValid() {
		t.Fatalf("first lock: %v %v", outcome, err)
	}
	if held.Resource != "golock:lock:s1:b1" {
		t.Fatalf("resource %s", held.Resource)
	}
	if pttl, _ := redis.Int64(srv.do(t, "PTTL", held.Resource), nil); pttl <= 4000 || pttl > 5000 {
		t.Fatalf("PTTL %d, want the 5 s TTL", pttl)
	}
	if _, outcome, _ := c.TryPairLock(ctx, "s1", "b1", time.Second); outcome != LockBusy {
		t.Fatalf("second lock: %v", outcome)
	}
	// Release deletes only its own token: a lock taken over after expiry stays.
	srv.do(t, "SET", held.Resource, "someone-else")
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := redis.String(srv.do(t, "GET", held.Resource), nil); v != "someone-else" {
		t.Fatalf("released another holder's lock (value %q)", v)
	}
	srv.do(t, "DEL", held.Resource)
	again, _, _ := c.TryPairLock(ctx, "s1", "b1", time.Second)
	if err := again.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := redis.Int(srv.do(t, "EXISTS", held.Resource), nil); n != 0 {
		t.Fatal("lock still there after release")
	}
}

func TestSingleNodeLockUnavailableWhenRedisIsDown(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "golock"})
	srv.stop()
	_, outcome, err := c.TryPairLock(context.Background(), "s1", "b1", time.Second)
	if outcome != LockUnavailable || err == nil {
		t.Fatalf("outcome %v err %v, want lock_unavailable with an error", outcome, err)
	}
}

func TestRedlockNeedsAQuorumOfNodes(t *testing.T) {
	nodes := []*redisServer{startRedis(t), startRedis(t), startRedis(t)}
	l := &locker{labels: []string{"n0", "n1", "n2"}}
	for _, n := range nodes {
		l.nodes = append(l.nodes, n.redis(t))
	}
	ctx := context.Background()
	held, outcome, err := l.tryLock(ctx, "vmk:lock:s1:b1", 2*time.Second)
	if outcome != LockAcquired || err != nil {
		t.Fatalf("all nodes up: %v %v", outcome, err)
	}
	for i, n := range nodes {
		if v, _ := redis.String(n.do(t, "GET", "vmk:lock:s1:b1"), nil); v != held.token {
			t.Fatalf("node %d holds %q", i, v)
		}
	}
	if _, outcome, _ := l.tryLock(ctx, "vmk:lock:s1:b1", time.Second); outcome != LockBusy {
		t.Fatalf("held lock: %v", outcome)
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// A worker holding the lock on two of three nodes (a quorum) keeps us out.
	nodes[0].do(t, "SET", "vmk:lock:s2:b1", "worker", "PX", 10000)
	nodes[1].do(t, "SET", "vmk:lock:s2:b1", "worker", "PX", 10000)
	if _, outcome, _ := l.tryLock(ctx, "vmk:lock:s2:b1", time.Second); outcome != LockBusy {
		t.Fatalf("worker's lock on a quorum: %v", outcome)
	}
	if v, _ := redis.String(nodes[2].do(t, "GET", "vmk:lock:s2:b1"), nil); v != "" {
		t.Fatalf("failed attempt left its token on node 2: %q", v)
	}
	// One node down: two of three still form a quorum.
	nodes[2].stop()
	held, outcome, err = l.tryLock(ctx, "vmk:lock:s3:b1", time.Second)
	if outcome != LockAcquired {
		t.Fatalf("one node down: %v %v", outcome, err)
	}
	_ = held.Release(ctx)
	// Two down: no quorum, and the error names the nodes.
	nodes[1].stop()
	_, outcome, err = l.tryLock(ctx, "vmk:lock:s4:b1", time.Second)
	if outcome != LockUnavailable || err == nil {
		t.Fatalf("two nodes down: %v %v", outcome, err)
	}
	if v, _ := redis.String(nodes[0].do(t, "GET", "vmk:lock:s4:b1"), nil); v != "" {
		t.Fatalf("failed attempt left its token on node 0: %q", v)
	}
	t.Log(err)
}

func TestLockWaitsForABusyLock(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "golock"})
	srv.do(t, "SET", "golock:lock:s1:b1", "worker", "PX", 300)
	started := time.Now()
	held, outcome, err := c.lock.lock(context.Background(), "golock:lock:s1:b1", time.Second, 3*time.Second)
	if outcome != LockAcquired || err != nil {
		t.Fatalf("%v %v", outcome, err)
	}
	if waited := time.Since(started); waited < 250*time.Millisecond || waited > 2*time.Second {
		t.Fatalf("waited %v for a lock with 300 ms left", waited)
	}
	_ = held.Release(context.Background())
	srv.do(t, "SET", "golock:lock:s1:b1", "worker", "PX", 5000)
	if _, outcome, _ := c.lock.lock(context.Background(), "golock:lock:s1:b1", time.Second, 200*time.Millisecond); outcome != LockBusy {
		t.Fatalf("after the wait: %v", outcome)
	}
}
