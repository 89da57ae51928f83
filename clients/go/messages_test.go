package vmcpkeepalive

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type validation struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

// Every message the client publishes is read back from the ingress stream and validated by the
// TypeScript schema the scheduler parses with.
func TestPublishedMessagesValidateAgainstTheSchedulersSchema(t *testing.T) {
	srv := startRedis(t)
	ring, _ := NewKeyRing([]CredentialKey{{ID: "k1", Key: randomKey(t)}})
	// Every touch is sent at once here (no debounce): each step is one message to validate.
	c := newTestClient(t, srv, Options{Prefix: "gomsg", KeyRing: ring, TouchInterval: -1})
	ctx := context.Background()
	creds := &Credentials{Headers: map[string]string{"authorization": "Bearer a"}, ExpiresAt: time.Now().Add(time.Hour)}
	steps := []func() error{
		func() error {
			return c.RegisterSession(ctx, "s1", 10*time.Minute, 24*time.Hour, []Backend{
				{ID: "b1", BackendSessionID: "abc-123", ProtocolVersion: "2025-06-18"},
				{ID: "b2"},
			})
		},
		func() error {
			return c.RegisterSession(ctx, "s2", time.Minute, 0, []Backend{{ID: "b1", BackendSessionID: "x", Credentials: creds}})
		},
		func() error { return c.Touch(ctx, "s1", nil, nil) },
		func() error { return c.Touch(ctx, "s1", []string{"b1", "b2"}, nil) },
		func() error { return c.Touch(ctx, "s2", []string{"b1"}, map[string]Credentials{"b1": *creds}) },
		func() error {
			return c.UpdateCredentials(ctx, "s2", "b1", Credentials{Headers: map[string]string{"authorization": "Bearer b"}})
		},
		func() error { return c.backendReinitialized(ctx, "s1", "b1") },
		func() error { return c.EndSession(ctx, "s1", "") },
		func() error { return c.EndSession(ctx, "s2", "user logged out") },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	messages := streamMessages(t, srv, "gomsg:session-messages")
	if len(messages) != len(steps) {
		t.Fatalf("%d messages on the stream, want %d", len(messages), len(steps))
	}
	var results []validation
	interop(t, map[string]interface{}{"op": "validate", "messages": messages}, &results)
	for i, r := range results {
		if !r.OK {
			t.Errorf("message %d %s rejected: %s", i, mustJSON(messages[i]), r.Error)
		}
	}
	if got := c.Stats().MessagesPublished; got != uint64(len(steps)) {
		t.Errorf("MessagesPublished = %d", got)
	}
	// The sealed credentials on the wire open for their pair.
	var reg struct {
		Backends []struct {
			Credentials SealedCredentials `json:"credentials"`
		} `json:"backends"`
	}
	if err := json.Unmarshal([]byte(mustJSON(messages[1])), &reg); err != nil {
		t.Fatal(err)
	}
	opened, err := ring.Open("s2", "b1", reg.Backends[0].Credentials)
	if err != nil || opened.Headers["authorization"] != "Bearer a" {
		t.Fatalf("registered credentials: %+v %v", opened, err)
	}
}

// A message the scheduler would reject is refused before it is sent, naming what was wrong.
func TestInvalidMessagesAreRefusedNamingTheField(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "gobad"})
	ctx := context.Background()
	b1 := []Backend{{ID: "b1", BackendSessionID: "x"}}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{c.RegisterSession(ctx, "bad:id", time.Minute, 0, b1), "sessionId \"bad:id\""},
		{c.RegisterSession(ctx, "s1", 10*time.Millisecond, 0, b1), "sessionTtlMs"},
		{c.RegisterSession(ctx, "s1", time.Minute, time.Millisecond, b1), "maxLifetimeMs"},
		{c.RegisterSession(ctx, "s1", time.Minute, 0, nil), "backends of s1: 0"},
		{c.RegisterSession(ctx, "s1", time.Minute, 0, []Backend{{ID: "b1"}, {ID: "b1"}}), "listed twice"},
		{c.RegisterSession(ctx, "s1", time.Minute, 0, []Backend{{ID: "b1", BackendSessionID: "has space"}}), "backends[0].backendSessionId"},
		{c.RegisterSession(ctx, "s1", time.Minute, 0, []Backend{{ID: "b1", ProtocolVersion: "v2"}}), "backends[0].protocolVersion"},
		{c.RegisterSession(ctx, "s1", time.Minute, 0, []Backend{{ID: "b1", Credentials: &Credentials{}}}), "no Options.KeyRing"},
		{c.Touch(ctx, "s1", []string{"b1", "b1"}, nil), "lists b1 twice"},
		{c.EndSession(ctx, "s1", strings.Repeat("x", 201)), "reason of s1"},
		{c.RegisterSession(ctx, "s1", time.Minute, 0, []Backend{{ID: "b1", BackendSessionID: strings.Repeat("x", 512)}, {ID: "b2", BackendSessionID: strings.Repeat("y", 512)}}), ""},
	} {
		if tc.want == "" {
			if tc.err != nil {
				t.Errorf("a valid registration was refused: %v", tc.err)
			}
			continue
		}
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", tc.err, tc.want)
		}
	}
	if n := len(streamMessages(t, srv, "gobad:session-messages")); n != 1 {
		t.Errorf("%d messages reached the stream, want only the valid one", n)
	}
}

// Sequences are ms × 1000 + n, strictly increasing per session even within one millisecond,
// and start again from the clock after an end.
func TestSequencesIncreasePerSession(t *testing.T) {
	s := newSequencer()
	at := time.UnixMilli(1700000000000)
	if got := s.next("a", at); got != 1700000000000000 {
		t.Fatalf("first sequence %d", got)
	}
	if got := s.next("a", at); got != 1700000000000001 {
		t.Fatalf("second in the same ms %d", got)
	}
	if got := s.next("b", at); got != 1700000000000000 {
		t.Fatalf("another session %d", got)
	}
	// A clock that steps back does not make a sequence go down.
	if got := s.next("a", at.Add(-time.Second)); got != 1700000000000002 {
		t.Fatalf("after a clock step back %d", got)
	}
	if got := s.next("a", at.Add(time.Millisecond)); got != 1700000000001000 {
		t.Fatalf("next ms %d", got)
	}
	s.forget("a")
	if got := s.next("a", at); got != 1700000000000000 {
		t.Fatalf("after forget %d", got)
	}
}

func TestSequencesOnTheStreamIncreasePerSession(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "goseq"})
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		if err := c.Touch(ctx, "s1", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	var last int64 = -1
	for _, m := range streamMessages(t, srv, "goseq:session-messages") {
		seq, _ := m["sequence"].(json.Number).Int64()
		if seq <= last {
			t.Fatalf("sequence %d after %d", seq, last)
		}
		if now := time.Now().UnixMilli() * 1000; seq > now+1000 || seq < now-60_000_000 {
			t.Fatalf("sequence %d is not ms × 1000 of now (%d)", seq, now)
		}
		last = seq
	}
}
