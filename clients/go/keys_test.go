package vmcpkeepalive

import (
	"reflect"
	"testing"
)

type tsPair struct {
	Pair string `json:"pair"`
	Lock string `json:"lock"`
}

type tsSession struct {
	Shard   int      `json:"shard"`
	Session string   `json:"session"`
	Pairs   []tsPair `json:"pairs"`
	Mutex   string   `json:"mutex"`
}

type tsLayout struct {
	Sessions        []tsSession `json:"sessions"`
	Backends        []string    `json:"backends"`
	ShardPrefixes   []string    `json:"shardPrefixes"`
	SessionsPrefix  string      `json:"sessionsPrefix"`
	EventsPrefix    string      `json:"eventsPrefix"`
	SessionMessages string      `json:"sessionMessages"`
	SessionEvents   string      `json:"sessionEvents"`
}

func TestKeyNamesEqualTheTypeScriptLayout(t *testing.T) {
	sessions := []string{"s1", "cl-0", "cl-1", "sess.42_x-Y", "a", "0"}
	for i := 0; i < 40; i++ {
		sessions = append(sessions, "go-session-"+string(rune('a'+i%26))+string(rune('0'+i%10)))
	}
	backends := []string{"b1", "github", "Backend.2_x"}
	type layout struct {
		Prefix   string   `json:"prefix"`
		Shards   int      `json:"shards"`
		Tagged   bool     `json:"tagged"`
		Sessions []string `json:"sessions"`
		Backends []string `json:"backends"`
	}
	layouts := []layout{
		{"vmk", 1, false, sessions, backends},    // standalone default
		{"vmk", 16, true, sessions, backends},    // cluster default
		{"app:vmk", 1, true, sessions, backends}, // cluster, one shard
		{"vmk", 3, true, sessions, backends},     // sharded standalone
		{"x", 1024, true, sessions, backends},
	}
	var want []tsLayout
	interop(t, map[string]interface{}{"op": "keys", "layouts": layouts}, &want)
	for li, l := range layouts {
		k, err := NewKeys(l.Prefix, l.Shards, l.Tagged)
		if err != nil {
			t.Fatal(err)
		}
		got := tsLayout{SessionsPrefix: k.SessionsPrefix(), EventsPrefix: k.EventsPrefix(), SessionMessages: k.SessionMessages(), SessionEvents: k.SessionEvents()}
		for _, s := range l.Sessions {
			ts := tsSession{Shard: k.ShardOf(s), Session: k.Session(s), Mutex: k.SessionMutex(s)}
			for _, b := range l.Backends {
				ts.Pairs = append(ts.Pairs, tsPair{Pair: k.Pair(s, b), Lock: k.PairLock(s, b)})
			}
			got.Sessions = append(got.Sessions, ts)
		}
		for _, b := range l.Backends {
			got.Backends = append(got.Backends, k.Backend(b))
		}
		for i := 0; i < l.Shards; i++ {
			got.ShardPrefixes = append(got.ShardPrefixes, k.ShardPrefix(i))
		}
		if !reflect.DeepEqual(got, want[li]) {
			t.Errorf("layout %+v differs from keys.ts:\n go: %s\n ts: %s", l, mustJSON(got), mustJSON(want[li]))
		}
	}
}

func TestStreamNamesInBothModes(t *testing.T) {
	standalone, _ := NewKeys("vmk", 1, false)
	cluster, _ := NewKeys("vmk", 16, true)
	for _, c := range []struct{ got, want string }{
		{standalone.SessionMessages(), "vmk:session-messages"},
		{standalone.SessionEvents(), "vmk:session-events"},
		{cluster.SessionMessages(), "vmk:{sessions}:session-messages"},
		{cluster.SessionEvents(), "vmk:{events}:session-events"},
		{standalone.Pair("s1", "b1"), "vmk:pair:s1:b1"},
		{standalone.PairLock("s1", "b1"), "vmk:lock:s1:b1"},
		// The example of docs/contract.md, "From another language".
		{cluster.Pair("s1", "b1"), "vmk:{14.23}:pair:s1:b1"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}

func TestHashSlotsEqualTheTypeScriptCRC16(t *testing.T) {
	keys := []string{"", "a", "foo", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "123456789", "vmk:{0.2}:pair:s:b", "ünïcode"}
	var want []int
	interop(t, map[string]interface{}{"op": "hashSlots", "keys": keys}, &want)
	for i, k := range keys {
		if got := HashSlot(k); got != want[i] {
			t.Errorf("HashSlot(%q) = %d, TypeScript %d", k, got, want[i])
		}
	}
	// The reference value of Redis' cluster specification: CRC16("123456789") = 0x31C3.
	if crc16([]byte("123456789")) != 0x31C3 {
		t.Errorf("crc16 is not XMODEM")
	}
}

func TestKeysRefuseBadLayouts(t *testing.T) {
	if _, err := NewKeys("vmk", 0, false); err == nil {
		t.Error("0 shards accepted")
	}
	if _, err := NewKeys("vmk", 1025, true); err == nil {
		t.Error("1025 shards accepted")
	}
	if _, err := NewKeys("a{b}", 2, true); err == nil {
		t.Error("braces in a tagged prefix accepted")
	}
}
