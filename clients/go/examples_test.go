package vmcpkeepalive

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// contractTypes lists the type constants of a published JSON Schema (docs/*.schema.json).
func contractTypes(t *testing.T, file string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", file))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		OneOf []struct {
			Properties struct {
				Type struct {
					Const string `json:"const"`
				} `json:"type"`
			} `json:"properties"`
		} `json:"oneOf"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range schema.OneOf {
		out = append(out, o.Properties.Type.Const)
	}
	if len(out) == 0 {
		t.Fatalf("docs/%s lists no types", file)
	}
	sort.Strings(out)
	return out
}

// example reads docs/examples/<type>.json.
func example(t *testing.T, typ string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "examples", typ+".json"))
	if err != nil {
		t.Fatalf("type %s has no example file: %v", typ, err)
	}
	return raw
}

// canonical is a JSON document as a comparable value; sealed credentials (random iv, tag and
// data) are masked.
func canonical(t *testing.T, raw []byte) interface{} {
	t.Helper()
	var v interface{}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	var mask func(v interface{})
	mask = func(v interface{}) {
		switch x := v.(type) {
		case map[string]interface{}:
			if _, sealed := x["iv"]; sealed {
				x["iv"], x["tag"], x["data"] = "…", "…", "…"
			}
			for _, e := range x {
				mask(e)
			}
		case []interface{}:
			for _, e := range x {
				mask(e)
			}
		}
	}
	mask(v)
	return v
}

// Every event type of the published schema: its example decodes into an Event that knows the
// type and every field (written back, the event equals its example).
func TestTheGoReaderKnowsEveryEventTypeWithItsFields(t *testing.T) {
	types := contractTypes(t, "vmcp-events.schema.json")
	var known []string
	for _, typ := range EventTypes {
		known = append(known, string(typ))
	}
	sort.Strings(known)
	if !reflect.DeepEqual(types, known) {
		t.Errorf("event types of docs/vmcp-events.schema.json %v, Go knows %v: add the missing ones to EventTypes and Event", types, known)
	}
	for _, typ := range types {
		raw := example(t, typ)
		ev, err := DecodeEvent(raw)
		if err != nil {
			t.Errorf("%s: %v", typ, err)
			continue
		}
		if !ev.Known() || string(ev.Type) != typ {
			t.Errorf("%s decoded as an unknown type %q", typ, ev.Type)
			continue
		}
		back, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := canonical(t, back), canonical(t, raw); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the Go event lost fields of its example:\n got %s\nwant %s", typ, back, raw)
		}
	}
}

// How the Go client produces each message type from the values of its example. A type without
// an entry here has no Go support.
var producers = map[string]func(ctx context.Context, c *Client, m *message) error{
	TypeSessionRegistered: func(ctx context.Context, c *Client, m *message) error {
		backends := make([]Backend, len(m.Backends))
		for i, b := range m.Backends {
			backends[i] = Backend{ID: b.BackendID, BackendSessionID: b.BackendSessionID, ProtocolVersion: b.ProtocolVersion, Credentials: credentialsLike(b.Credentials)}
		}
		return c.RegisterSession(ctx, m.SessionID, time.Duration(m.SessionTTLMs)*time.Millisecond, time.Duration(m.MaxLifetimeMs)*time.Millisecond, backends)
	},
	TypeSessionTouched: func(ctx context.Context, c *Client, m *message) error {
		var sealed map[string]*SealedCredentials
		if len(m.Credentials) > 0 {
			if err := json.Unmarshal(m.Credentials, &sealed); err != nil {
				return err
			}
		}
		credentials := map[string]Credentials{}
		for id, s := range sealed {
			credentials[id] = *credentialsLike(s)
		}
		return c.Touch(ctx, m.SessionID, m.BackendIDs, credentials)
	},
	TypeSessionEnded: func(ctx context.Context, c *Client, m *message) error {
		return c.EndSession(ctx, m.SessionID, *m.Reason)
	},
	TypeSessionCredentialsUpdated: func(ctx context.Context, c *Client, m *message) error {
		var s SealedCredentials
		if err := json.Unmarshal(m.Credentials, &s); err != nil {
			return err
		}
		return c.UpdateCredentials(ctx, m.SessionID, m.BackendID, *credentialsLike(&s))
	},
	TypeSessionBackendReinitialized: func(ctx context.Context, c *Client, m *message) error {
		return c.backendReinitialized(ctx, m.SessionID, m.BackendID)
	},
}

// credentialsLike is a token that seals into an envelope shaped like s (same expiry).
func credentialsLike(s *SealedCredentials) *Credentials {
	if s == nil {
		return nil
	}
	c := &Credentials{Headers: map[string]string{"authorization": "Bearer example"}}
	if s.ExpiresAt != nil {
		c.ExpiresAt = time.UnixMilli(*s.ExpiresAt)
	}
	return c
}

// Every message type of the published schema: the Go message knows every field of its example,
// and the Go client, given the example's values, publishes exactly the example (sealed bytes aside).
func TestTheGoClientProducesEveryMessageTypeAsItsExample(t *testing.T) {
	types := contractTypes(t, "session-messages.schema.json")
	srv := startRedis(t)
	ring, _ := NewKeyRing([]CredentialKey{{ID: "k1", Key: randomKey(t)}})
	for i, typ := range types {
		produce, ok := producers[typ]
		if !ok {
			t.Errorf("message type %s of docs/session-messages.schema.json has no Go support", typ)
			continue
		}
		raw := example(t, typ)
		var m message
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&m); err != nil {
			t.Errorf("%s: the Go message has no field for part of its example: %v", typ, err)
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m.OccurredAt)
		if err != nil {
			t.Fatal(err)
		}
		prefix := "goex" + strings.Repeat("x", i)
		c := newTestClient(t, srv, Options{Prefix: prefix, ReplicaID: orDefault(m.ReplicaID, "go-1"), KeyRing: ring, RefreshInterval: -1, TouchInterval: -1})
		c.now = func() time.Time { return at }
		if err := produce(context.Background(), c, &m); err != nil {
			t.Errorf("%s: %v", typ, err)
			continue
		}
		sent := streamMessages(t, srv, prefix+":session-messages")
		if len(sent) != 1 {
			t.Fatalf("%s: %d messages sent", typ, len(sent))
		}
		got, _ := json.Marshal(sent[0])
		if !reflect.DeepEqual(canonical(t, got), canonical(t, raw)) {
			t.Errorf("%s: the Go client sent\n %s\nwant (its example)\n %s", typ, got, raw)
		}
	}
	// And no example file without a type.
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "docs", "examples", "*.json"))
	all := append(contractTypes(t, "vmcp-events.schema.json"), types...)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		found := false
		for _, typ := range all {
			found = found || typ == name
		}
		if !found {
			t.Errorf("docs/examples/%s names no type of the schemas", filepath.Base(f))
		}
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
