package vmcpkeepalive

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

func TestReinitializeStoresTheNewSessionUnderThePairLock(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "gore"})
	pair := "gore:pair:s1:b1"
	srv.do(t, "HSET", pair, "bsid", "old", "pv", "2025-03-26", "epoch", 3, "status", "expired", "last", "failure:session_expired", "fails", 2, "latMs", 5)
	var lockDuringCallback string
	result, err := c.ReinitializeBackend(context.Background(), "s1", "b1", func(ctx context.Context) (ReinitializedBackend, error) {
		lockDuringCallback, _ = redis.String(srv.do(t, "GET", "gore:lock:s1:b1"), nil)
		return ReinitializedBackend{BackendSessionID: "new-session", ProtocolVersion: "2025-06-18"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if result.Lock != ReinitLockHeld || result.State != ReinitWritten || result.Epoch != 4 || !result.SchedulerRestoreRequested {
		t.Fatalf("result %+v", result)
	}
	if lockDuringCallback == "" {
		t.Fatal("the pair lock was not held while the callback ran")
	}
	if n, _ := redis.Int(srv.do(t, "EXISTS", "gore:lock:s1:b1"), nil); n != 0 {
		t.Fatal("pair lock not released")
	}
	fields, _ := redis.StringMap(srv.do(t, "HGETALL", pair), nil)
	if fields["bsid"] != "new-session" || fields["pv"] != "2025-06-18" || fields["epoch"] != "4" || fields["status"] != "active" || fields["last"] != "" || fields["fails"] != "" || fields["regAt"] == "" {
		t.Fatalf("pair after re-initialize: %v", fields)
	}
	msgs := streamMessages(t, srv, "gore:session-messages")
	if len(msgs) != 1 || msgs[0]["type"] != TypeSessionBackendReinitialized || msgs[0]["backendId"] != "b1" {
		t.Fatalf("stream: %v", msgs)
	}

	// An active pair: stored, but no restore is asked for (its job scheduler never went away).
	result, err = c.ReinitializeBackend(context.Background(), "s1", "b1", func(ctx context.Context) (ReinitializedBackend, error) {
		return ReinitializedBackend{BackendSessionID: "newer"}, nil
	})
	if err != nil || result.State != ReinitWritten || result.Epoch != 5 || result.SchedulerRestoreRequested {
		t.Fatalf("active pair: %+v %v", result, err)
	}
	if n := len(streamMessages(t, srv, "gore:session-messages")); n != 1 {
		t.Fatalf("%d messages, want no new one", n)
	}
}

func TestReinitializeNeverCreatesAPair(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "gore"})
	result, err := c.ReinitializeBackend(context.Background(), "gone", "b1", func(ctx context.Context) (ReinitializedBackend, error) {
		return ReinitializedBackend{BackendSessionID: "x"}, nil
	})
	if err != nil || result.State != ReinitUnknownPair || result.Lock != ReinitLockHeld {
		t.Fatalf("%+v %v", result, err)
	}
	if n, _ := redis.Int(srv.do(t, "EXISTS", "gore:pair:gone:b1"), nil); n != 0 {
		t.Fatal("created a pair")
	}
}

func TestReinitializeReturnsTheCallbacksErrorAfterReleasing(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "gore"})
	srv.do(t, "HSET", "gore:pair:s1:b1", "bsid", "old", "epoch", 1)
	boom := errors.New("backend refused initialize")
	_, err := c.ReinitializeBackend(context.Background(), "s1", "b1", func(ctx context.Context) (ReinitializedBackend, error) {
		return ReinitializedBackend{}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if n, _ := redis.Int(srv.do(t, "EXISTS", "gore:lock:s1:b1"), nil); n != 0 {
		t.Fatal("pair lock not released")
	}
	if v, _ := redis.String(srv.do(t, "HGET", "gore:pair:s1:b1", "bsid"), nil); v != "old" {
		t.Fatalf("bsid %q", v)
	}
	result, err := c.ReinitializeBackend(context.Background(), "s1", "b1", func(ctx context.Context) (ReinitializedBackend, error) {
		return ReinitializedBackend{BackendSessionID: "bad id with spaces"}, nil
	})
	if !errors.Is(err, ErrInvalidResult) || result.State != ReinitInvalidResult {
		t.Fatalf("%+v %v", result, err)
	}
}

// A worker holding the lock is waited for (up to LockTimeout); still busy after it, the
// re-initialize goes ahead without the lock and says so.
func TestReinitializeWaitsForAWorkersLockThenGoesAhead(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "gore", LockTimeout: 300 * time.Millisecond})
	srv.do(t, "HSET", "gore:pair:s1:b1", "bsid", "old", "epoch", 1)
	srv.do(t, "SET", "gore:lock:s1:b1", "worker", "PX", 150)
	fn := func(ctx context.Context) (ReinitializedBackend, error) {
		return ReinitializedBackend{BackendSessionID: "new"}, nil
	}
	result, err := c.ReinitializeBackend(context.Background(), "s1", "b1", fn)
	if err != nil || result.Lock != ReinitLockHeld || result.State != ReinitWritten {
		t.Fatalf("short worker lock: %+v %v", result, err)
	}
	srv.do(t, "SET", "gore:lock:s1:b1", "worker", "PX", 5000)
	result, err = c.ReinitializeBackend(context.Background(), "s1", "b1", fn)
	if err != nil || result.Lock != ReinitLockBusy || result.State != ReinitWritten || result.Epoch != 3 {
		t.Fatalf("long worker lock: %+v %v", result, err)
	}
	if v, _ := redis.String(srv.do(t, "GET", "gore:lock:s1:b1"), nil); v != "worker" {
		t.Fatalf("the worker's lock was touched: %q", v)
	}
}

// The script runs by SHA once loaded: EVALSHA after the first EVAL.
func TestReinitializeScriptRunsBySHA(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "gore"})
	srv.do(t, "HSET", "gore:pair:s1:b1", "epoch", 1)
	for i := 0; i < 2; i++ {
		if _, _, _, err := c.reinitializePair(context.Background(), "s1", "b1", ReinitializedBackend{BackendSessionID: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	exists, _ := redis.Ints(srv.do(t, "SCRIPT", "EXISTS", reinitializePairScript.hash()), nil)
	if len(exists) != 1 || exists[0] != 1 {
		t.Fatal("script not loaded under its SHA")
	}
}
