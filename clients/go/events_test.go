package vmcpkeepalive

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReadEventsThroughAConsumerGroup(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "goev"})
	stream := "goev:session-events"
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got []Event
	failOnce := true
	done := make(chan error, 1)
	go func() {
		done <- c.ReadEvents(ctx, "vmcp", "replica-1", func(ctx context.Context, e Event) error {
			mu.Lock()
			defer mu.Unlock()
			if e.Type == EventBreakerClosed && failOnce {
				failOnce = false
				return errors.New("handler not ready")
			}
			got = append(got, e)
			return nil
		})
	}()
	waitUntil(t, "the consumer group", func() bool {
		conn, err := redis.Dial("unix", srv.socket)
		if err != nil {
			return false
		}
		defer conn.Close()
		groups, _ := redis.Values(conn.Do("XINFO", "GROUPS", stream))
		return len(groups) == 1
	})
	srv.do(t, "XADD", stream, "*", "event", `{"type":"backend.session_expired","v":1,"occurredAt":"2026-01-01T00:00:00.000Z","sessionId":"s1","backendId":"b1","backendSessionId":"old"}`)
	srv.do(t, "XADD", stream, "*", "event", `not json`)
	srv.do(t, "XADD", stream, "*", "other", `{}`)
	srv.do(t, "XADD", stream, "*", "event", `{"type":"backend.breaker_closed","v":1,"occurredAt":"2026-01-01T00:00:00.000Z","backendId":"b1"}`)
	// A field a newer worker added is ignored; a type a newer worker added is handed over.
	srv.do(t, "XADD", stream, "*", "event", `{"type":"backend.unauthorized","v":1,"occurredAt":"2026-01-01T00:00:00.000Z","sessionId":"s2","backendId":"b1","status":403,"addedLater":{"x":1}}`)
	srv.do(t, "XADD", stream, "*", "event", `{"type":"backend.something_new","v":1,"occurredAt":"2026-01-01T00:00:00.000Z","backendId":"b1","what":"new"}`)
	waitUntil(t, "four events handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 4
	})
	byType := map[EventType]Event{}
	for _, e := range got {
		byType[e.Type] = e
	}
	if e := byType[EventUnauthorized]; e.Status != 403 || e.SessionID != "s2" || !e.Known() {
		t.Fatalf("event with an added field: %+v", e)
	}
	if e, ok := byType["backend.something_new"]; !ok || e.Known() || e.BackendID != "b1" || !strings.Contains(string(e.Raw), `"what":"new"`) {
		t.Fatalf("event of an unknown type: %+v", e)
	}
	if got[0].Type != EventBackendSessionExpired || got[0].SessionID != "s1" || got[0].BackendSessionID != "old" || got[0].StreamID == "" {
		t.Fatalf("first event %+v", got[0])
	}
	// The handler's failure was delivered again; everything is acknowledged in the end.
	if _, ok := byType[EventBreakerClosed]; !ok {
		t.Fatalf("the failed event was not delivered again: %+v", got)
	}
	waitUntil(t, "nothing pending", func() bool {
		p, _ := redis.Values(srv.do(t, "XPENDING", stream, "vmcp"), nil)
		n, _ := redis.Int(p[0], nil)
		return n == 0
	})
	st := c.Stats()
	if st.EventsHandled != 4 || st.EventsRejected != 2 || st.EventsFailed != 1 || st.EventsOfUnknownType != 1 {
		t.Fatalf("stats %+v", st)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ReadEvents after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadEvents did not return after cancel")
	}
}

// A replica that died with events unacknowledged: the next consumer of the group claims them.
func TestAnotherConsumerClaimsADeadConsumersEvents(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "goev"})
	stream := "goev:session-events"
	srv.do(t, "XGROUP", "CREATE", stream, "vmcp", "$", "MKSTREAM")
	srv.do(t, "XADD", stream, "*", "event", `{"type":"backend.breaker_closed","v":1,"occurredAt":"2026-01-01T00:00:00.000Z","backendId":"b9"}`)
	// "dead" reads it and never acknowledges; make it look idle for longer than the claim delay.
	srv.do(t, "XREADGROUP", "GROUP", "vmcp", "dead", "STREAMS", stream, ">")
	entries, _ := parseEntries(srv.do(t, "XRANGE", stream, "-", "+"))
	srv.do(t, "XCLAIM", stream, "vmcp", "dead", 0, entries[0].id, "IDLE", eventClaimIdle.Milliseconds()+1000)
	ctx, cancel := context.WithCancel(context.Background())
	handled := make(chan Event, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.ReadEvents(ctx, "vmcp", "alive", func(ctx context.Context, e Event) error {
			handled <- e
			return nil
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case e := <-handled:
		if e.BackendID != "b9" {
			t.Fatalf("%+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the dead consumer's event was not claimed")
	}
}
