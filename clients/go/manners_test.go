package vmcpkeepalive

import (
	"bytes"
	"context"
	"errors"
	"log"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Without a Logger the library writes nothing — not to the standard logger, not to stderr —
// even when everything fails; the failures reach the caller as errors or through OnError.
func TestTheClientWritesNothingWithoutALogger(t *testing.T) {
	var buf bytes.Buffer
	log.SetOutput(&buf)
	defer log.SetOutput(os.Stderr)

	srv := startRedis(t)
	var mu sync.Mutex
	var background []error
	c := newTestClient(t, srv, Options{Prefix: "goquiet", RefreshInterval: 100 * time.Millisecond, LockTimeout: 50 * time.Millisecond, OnError: func(err error) {
		mu.Lock()
		background = append(background, err)
		mu.Unlock()
	}})
	ctx := context.Background()
	if err := c.RegisterSession(ctx, "s1", time.Minute, 0, []Backend{{ID: "b1", BackendSessionID: "x"}}); err != nil {
		t.Fatal(err)
	}
	srv.do(t, "XADD", "goquiet:session-events", "*", "event", "not json")
	srv.stop()

	if err := c.Touch(ctx, "s1", nil, nil); err == nil {
		t.Fatal("a touch with Redis down returned no error")
	}
	var pe *PublishError
	if err := c.EndSession(ctx, "s2", ""); !errors.As(err, &pe) || pe.Type != TypeSessionEnded {
		t.Fatalf("EndSession with Redis down: %v, want a *PublishError", err)
	}
	result, err := c.ReinitializeBackend(ctx, "s1", "b1", func(context.Context) (ReinitializedBackend, error) {
		return ReinitializedBackend{BackendSessionID: "y"}, nil
	})
	if !errors.Is(err, ErrReinitializeWrite) || result.State != ReinitWriteFailed || result.Lock != ReinitLockUnavailable || result.LockErr == nil {
		t.Fatalf("re-initialize with Redis down: %+v %v", result, err)
	}
	readCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := c.ReadEvents(readCtx, "g", "c", func(context.Context, Event) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadEvents: %v", err)
	}
	waitUntil(t, "a failed refresh reported through OnError", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(background) > 0
	})
	if buf.Len() != 0 {
		t.Fatalf("the library wrote to the standard logger: %q", buf.String())
	}
}

// With a Logger, the client says what went wrong.
func TestALoggerHearsWhatWentWrong(t *testing.T) {
	srv := startRedis(t)
	var buf bytes.Buffer
	c := newTestClient(t, srv, Options{Prefix: "goloud", Logger: log.New(&buf, "", 0), RefreshInterval: -1})
	srv.do(t, "XGROUP", "CREATE", "goloud:session-events", "g", "$", "MKSTREAM")
	srv.do(t, "XADD", "goloud:session-events", "*", "event", "not json")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.ReadEvents(ctx, "g", "c", func(context.Context, Event) error { return nil }) }()
	srv.do(t, "XADD", "goloud:session-events", "*", "event", "not json")
	waitUntil(t, "both rejections", func() bool { return c.Stats().EventsRejected == 2 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadEvents after cancel: %v", err)
	}
	if !strings.Contains(buf.String(), "rejected: invalid event JSON") {
		t.Fatalf("log: %q", buf.String())
	}
}

// A server that accepts connections and never answers: the dial (AUTH is its first command)
// gives up when ctx is done, not after the connection's own timeouts.
func TestDiallingAServerThatNeverAnswersStopsWhenTheContextIsDone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	for _, o := range []Options{
		{Address: "redis://:secret@" + ln.Addr().String()},
		{ClusterNodes: []string{"redis://:secret@" + ln.Addr().String()}},
		{Sentinel: &SentinelOptions{Addresses: []string{ln.Addr().String()}, MasterName: "m"}},
	} {
		o.ReplicaID = "go-1"
		o.ConnectTimeout = time.Minute
		c, err := NewClient(o)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		started := time.Now()
		err = c.RegisterSession(ctx, "s1", time.Minute, 0, []Backend{{ID: "b1"}})
		took := time.Since(started)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || took > 2*time.Second {
			t.Fatalf("%+v: %v after %v, want the context's deadline after about 300 ms", o, err, took)
		}
		closeCtx, closeCancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.Close(closeCtx)
		closeCancel()
	}
}

func TestNoopKeepsNothingAndWaitsForTheContext(t *testing.T) {
	var k Keepalive = Noop{}
	ctx, cancel := context.WithCancel(context.Background())
	if err := k.RegisterSession(ctx, "s1", time.Minute, 0, nil); err != nil {
		t.Fatal(err)
	}
	result, err := k.ReinitializeBackend(ctx, "s1", "b1", func(context.Context) (ReinitializedBackend, error) {
		return ReinitializedBackend{BackendSessionID: "new"}, nil
	})
	if err != nil || result.Backend.BackendSessionID != "new" || result.State != ReinitUnknownPair {
		t.Fatalf("%+v %v", result, err)
	}
	done := make(chan error, 1)
	go func() { done <- k.ReadEvents(ctx, "g", "c", nil) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadEvents: %v", err)
	}
}
