package vmcpkeepalive

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// messagesOf reads the stream's messages of one type for one session.
func messagesOf(t *testing.T, srv *redisServer, stream, typ, sessionID string) []map[string]interface{} {
	t.Helper()
	var out []map[string]interface{}
	for _, m := range streamMessages(t, srv, stream) {
		if m["type"] == typ && m["sessionId"] == sessionID {
			out = append(out, m)
		}
	}
	return out
}

func TestSoftStateRegistersLiveSessionsAgainWithTheirCurrentBackends(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "gosoft", RefreshInterval: 200 * time.Millisecond})
	ctx := context.Background()
	stream := "gosoft:session-messages"
	if err := c.RegisterSession(ctx, "live", time.Minute, 0, []Backend{{ID: "b1", BackendSessionID: "first"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterSession(ctx, "ended", time.Minute, 0, []Backend{{ID: "b1", BackendSessionID: "x"}}); err != nil {
		t.Fatal(err)
	}
	srv.do(t, "HSET", "gosoft:pair:live:b1", "epoch", 1)
	if _, err := c.ReinitializeBackend(ctx, "live", "b1", func(context.Context) (ReinitializedBackend, error) {
		return ReinitializedBackend{BackendSessionID: "second", ProtocolVersion: "2025-06-18"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.EndSession(ctx, "ended", ""); err != nil {
		t.Fatal(err)
	}
	endedAt := len(messagesOf(t, srv, stream, TypeSessionRegistered, "ended"))
	waitUntil(t, "three refreshes of the live session", func() bool {
		return len(messagesOf(t, srv, stream, TypeSessionRegistered, "live")) >= 4
	})
	live := messagesOf(t, srv, stream, TypeSessionRegistered, "live")
	last := live[len(live)-1]
	backends := last["backends"].([]interface{})
	if b := backends[0].(map[string]interface{}); b["backendSessionId"] != "second" || b["protocolVersion"] != "2025-06-18" {
		t.Fatalf("a refresh after the re-initialize carries %v, want the new backend session", b)
	}
	for i := 1; i < len(live); i++ {
		prev, _ := live[i-1]["sequence"].(json.Number).Int64()
		next, _ := live[i]["sequence"].(json.Number).Int64()
		if next <= prev {
			t.Fatalf("refresh %d has sequence %d after %d", i, next, prev)
		}
	}
	if got := len(messagesOf(t, srv, stream, TypeSessionRegistered, "ended")); got != endedAt {
		t.Fatalf("an ended session was registered again (%d registrations, %d before it ended)", got, endedAt)
	}
	if c.Stats().Refreshes < 3 {
		t.Fatalf("stats %+v", c.Stats())
	}
}

func TestSoftStateIsOffWithANegativeInterval(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "gosoft", RefreshInterval: -1})
	if err := c.RegisterSession(context.Background(), "s1", 3*time.Second, 0, []Backend{{ID: "b1", BackendSessionID: "x"}}); err != nil {
		t.Fatal(err)
	}
	// The default would refresh every second (a third of the TTL).
	time.Sleep(1500 * time.Millisecond)
	if got := len(messagesOf(t, srv, "gosoft:session-messages", TypeSessionRegistered, "s1")); got != 1 {
		t.Fatalf("%d registrations, want 1", got)
	}
}

func TestTheDefaultRefreshIsAThirdOfTheTTLAtMostTenMinutes(t *testing.T) {
	s := newSoftState(nil, 0)
	if got := s.every(&registration{ttl: 3 * time.Minute}); got != time.Minute {
		t.Fatalf("3 min TTL: %v", got)
	}
	if got := s.every(&registration{ttl: 2 * time.Hour}); got != 10*time.Minute {
		t.Fatalf("2 h TTL: %v", got)
	}
}

func TestTouchesFoldPerSessionAndCloseFlushesThePendingOne(t *testing.T) {
	srv := startRedis(t)
	ring, _ := NewKeyRing([]CredentialKey{{ID: "k1", Key: randomKey(t)}})
	c := newTestClient(t, srv, Options{Prefix: "gotouch", TouchInterval: time.Hour, RefreshInterval: -1, KeyRing: ring})
	ctx := context.Background()
	stream := "gotouch:session-messages"
	for i := 0; i < 5; i++ {
		if err := c.Touch(ctx, "s1", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	creds := map[string]Credentials{"b2": {Headers: map[string]string{"authorization": "Bearer new"}}}
	if err := c.Touch(ctx, "s1", []string{"b1"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Touch(ctx, "s1", []string{"b2", "b1"}, creds); err != nil {
		t.Fatal(err)
	}
	if err := c.Touch(ctx, "s2", nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := len(messagesOf(t, srv, stream, TypeSessionTouched, "s1")); got != 1 {
		t.Fatalf("%d touches of s1 sent within the interval, want the first one only", got)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	touches := messagesOf(t, srv, stream, TypeSessionTouched, "s1")
	if len(touches) != 2 {
		t.Fatalf("after Close: %d touches of s1, want 2 (the trailing one flushed)", len(touches))
	}
	trailing := touches[1]
	if ids := trailing["backendIds"].([]interface{}); len(ids) != 2 || ids[0] != "b1" || ids[1] != "b2" {
		t.Fatalf("trailing touch names %v, want [b1 b2]", ids)
	}
	if cr, ok := trailing["credentials"].(map[string]interface{}); !ok || cr["b2"] == nil {
		t.Fatalf("trailing touch carries no credentials for b2: %v", trailing)
	}
	if got := c.Stats().TouchesFolded; got != 6 {
		t.Fatalf("%d touches folded, want 6", got)
	}
}

func TestATrailingTouchIsSentAtTheEndOfTheInterval(t *testing.T) {
	srv := startRedis(t)
	c := newTestClient(t, srv, Options{Prefix: "gotouch", TouchInterval: 150 * time.Millisecond, RefreshInterval: -1})
	ctx := context.Background()
	_ = c.Touch(ctx, "s1", nil, nil)
	_ = c.Touch(ctx, "s1", []string{"b1"}, nil)
	waitUntil(t, "the trailing touch", func() bool {
		return len(messagesOf(t, srv, "gotouch:session-messages", TypeSessionTouched, "s1")) == 2
	})
	// An ended session's pending touch is dropped.
	_ = c.Touch(ctx, "s2", nil, nil)
	_ = c.Touch(ctx, "s2", []string{"b1"}, nil)
	if err := c.EndSession(ctx, "s2", ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if got := len(messagesOf(t, srv, "gotouch:session-messages", TypeSessionTouched, "s2")); got != 1 {
		t.Fatalf("%d touches of an ended session, want the first one only", got)
	}
}
