package vmcpkeepalive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// EventType is an event's type (docs/vmcp-events.schema.json). A reader may meet types newer
// than this client: they are handed over as they are (Event.Known is false).
type EventType string

// Event types of contract v1.
const (
	// EventBackendSessionExpired: the backend answered 404 for the pair's session; re-initialize it.
	EventBackendSessionExpired EventType = "backend.session_expired"
	// EventBreakerOpened: the backend's breaker opened (keepalives to it paused until ProbeAt).
	EventBreakerOpened EventType = "backend.breaker_opened"
	// EventBreakerClosed: the backend's breaker closed again.
	EventBreakerClosed EventType = "backend.breaker_closed"
	// EventCredentialsExpired: the pair's credentials passed ExpiresAt; no call is made with them.
	EventCredentialsExpired EventType = "backend.credentials_expired"
	// EventCredentialsExpiring: the pair's credentials expire within the workers' refresh_before.
	EventCredentialsExpiring EventType = "backend.credentials_expiring"
	// EventUnauthorized: the backend refused the pair's credentials (Status 401 or 403); the pair
	// is off until new credentials come (Touch or UpdateCredentials).
	EventUnauthorized EventType = "backend.unauthorized"
)

// EventTypes are the event types this client knows, each with its required fields.
var EventTypes = []EventType{EventBackendSessionExpired, EventBreakerOpened, EventBreakerClosed, EventCredentialsExpired, EventCredentialsExpiring, EventUnauthorized}

// FailureReason is a keepalive failure reason (the contract's closed set; a newer worker may add one).
type FailureReason string

// Event is one entry of the event stream. Fields a type does not have are zero. Fields the
// contract may add later are in Raw only: a reader ignores what it does not know.
type Event struct {
	// StreamID is the entry's id in the event stream.
	StreamID   string
	Type       EventType
	V          int
	OccurredAt time.Time
	// SessionID and BackendID: the pair (breaker events name only the backend).
	SessionID string
	BackendID string
	// BackendSessionID (backend.session_expired) is the backend session that answered 404.
	BackendSessionID string
	// Reason, ConsecutiveFailures, ProbeAt: backend.breaker_opened.
	Reason              FailureReason
	ConsecutiveFailures int
	ProbeAt             time.Time
	// ExpiresAt: backend.credentials_expired and backend.credentials_expiring.
	ExpiresAt time.Time
	// Status: backend.unauthorized (401 or 403).
	Status int
	// Raw is the event's JSON as published.
	Raw json.RawMessage
}

// Known: the event's type is one this client knows (its fields are then checked and set).
func (e Event) Known() bool {
	for _, t := range EventTypes {
		if e.Type == t {
			return true
		}
	}
	return false
}

// eventWire is an event's JSON; unknown fields are ignored (the contract's evolution rule).
type eventWire struct {
	Type                EventType     `json:"type"`
	V                   int           `json:"v"`
	OccurredAt          string        `json:"occurredAt"`
	SessionID           string        `json:"sessionId,omitempty"`
	BackendID           string        `json:"backendId,omitempty"`
	BackendSessionID    string        `json:"backendSessionId,omitempty"`
	Reason              FailureReason `json:"reason,omitempty"`
	ConsecutiveFailures *int          `json:"consecutiveFailures,omitempty"`
	ProbeAt             string        `json:"probeAt,omitempty"`
	ExpiresAt           string        `json:"expiresAt,omitempty"`
	Status              int           `json:"status,omitempty"`
}

// MarshalJSON writes the event's known fields as the contract has them (times in UTC, ms).
func (e Event) MarshalJSON() ([]byte, error) {
	w := eventWire{Type: e.Type, V: e.V, SessionID: e.SessionID, BackendID: e.BackendID, BackendSessionID: e.BackendSessionID, Reason: e.Reason, Status: e.Status}
	at := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return occurredAt(t)
	}
	w.OccurredAt, w.ProbeAt, w.ExpiresAt = at(e.OccurredAt), at(e.ProbeAt), at(e.ExpiresAt)
	if e.Type == EventBreakerOpened {
		n := e.ConsecutiveFailures
		w.ConsecutiveFailures = &n
	}
	return json.Marshal(w)
}

// DecodeEvent reads an event's JSON as the contract's readers must: unknown fields are ignored;
// an unknown type is returned with its common fields (Known() false) and no error; a known type
// without a field it requires, or not JSON at all, is an error.
func DecodeEvent(raw []byte) (Event, error) {
	var w eventWire
	if err := json.Unmarshal(raw, &w); err != nil {
		return Event{}, fmt.Errorf("invalid event JSON: %w", err)
	}
	if w.Type == "" {
		return Event{}, errors.New("event without type")
	}
	ev := Event{Type: w.Type, V: w.V, SessionID: w.SessionID, BackendID: w.BackendID, BackendSessionID: w.BackendSessionID, Reason: w.Reason, Status: w.Status, Raw: json.RawMessage(raw)}
	if w.ConsecutiveFailures != nil {
		ev.ConsecutiveFailures = *w.ConsecutiveFailures
	}
	var missing []string
	need := func(field string, ok bool) {
		if !ok {
			missing = append(missing, field)
		}
	}
	parseTime := func(field, value string, required bool) time.Time {
		if value == "" {
			need(field, !required)
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339Nano, value)
		need(field, err == nil)
		return t
	}
	known := ev.Known()
	ev.OccurredAt = parseTime("occurredAt", w.OccurredAt, known)
	ev.ProbeAt = parseTime("probeAt", w.ProbeAt, known && w.Type == EventBreakerOpened)
	ev.ExpiresAt = parseTime("expiresAt", w.ExpiresAt, known && (w.Type == EventCredentialsExpired || w.Type == EventCredentialsExpiring))
	if known {
		need("v", w.V == 1)
		need("backendId", w.BackendID != "")
	}
	switch w.Type {
	case EventBackendSessionExpired:
		need("sessionId", w.SessionID != "")
		need("backendSessionId", w.BackendSessionID != "")
	case EventBreakerOpened:
		need("reason", w.Reason != "")
		need("consecutiveFailures", w.ConsecutiveFailures != nil)
	case EventCredentialsExpired, EventCredentialsExpiring:
		need("sessionId", w.SessionID != "")
	case EventUnauthorized:
		need("sessionId", w.SessionID != "")
		need("status", w.Status == 401 || w.Status == 403)
	}
	if len(missing) > 0 {
		return Event{}, fmt.Errorf("%s: missing or invalid %s", w.Type, strings.Join(missing, ", "))
	}
	return ev, nil
}

// EventHandler handles one event. nil acknowledges it (XACK); an error leaves it pending, and it
// is delivered again (to this consumer on its next pass, or claimed by another after ClaimIdle).
type EventHandler func(ctx context.Context, e Event) error

// How ReadEvents polls: entries per read, how long one read blocks, and after how long another
// consumer's unacknowledged entries are claimed (that consumer is taken for dead).
const (
	eventReadCount = 100
	eventBlock     = 2 * time.Second
	eventClaimIdle = 30 * time.Second
)

// ReadEvents reads the event stream as `consumer` of consumer group `group` until ctx is done,
// then returns ctx.Err(). The group is created at the end of the stream when it does not exist
// (XGROUP CREATE … $ MKSTREAM): a deployment sees the events from its first start on. Each vMCP
// deployment uses its own group, each replica its own consumer name; an event goes to one
// consumer of the group, so handlers act on state every replica shares.
//
// Order of reads: this consumer's own pending entries first (a restart after a crash), then new
// entries (XREADGROUP … >), and every ClaimIdle the entries other consumers left unacknowledged
// for that long (XAUTOCLAIM). Events of a type this client does not know are handed over too
// (Event.Known() false). An entry that is not a valid event is counted (Stats().EventsRejected)
// and acknowledged, never passed on. A Redis error is retried after a second (and logged when a
// Logger is set); only a failure to create the group ends ReadEvents early.
func (c *Client) ReadEvents(ctx context.Context, group, consumer string, handler EventHandler) error {
	if group == "" || consumer == "" {
		return errors.New("ReadEvents: group and consumer must not be empty")
	}
	stream := c.keys.SessionEvents()
	for {
		err := c.createGroup(ctx, stream, group)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if permanentError(err) {
			return err
		}
		c.log.Printf("vmcpkeepalive: %v (retrying in 1 s)", err)
		if !sleepCtx(ctx, time.Second) {
			return ctx.Err()
		}
	}
	pending := true
	lastClaim := time.Time{}
	for ctx.Err() == nil {
		var entries []streamEntry
		var err error
		switch {
		case pending:
			entries, err = c.readGroup(ctx, stream, group, consumer, "0", 0)
			pending = len(entries) > 0
		case time.Since(lastClaim) >= eventClaimIdle:
			lastClaim = time.Now()
			entries, err = c.autoClaim(ctx, stream, group, consumer)
		default:
			entries, err = c.readGroup(ctx, stream, group, consumer, ">", eventBlock)
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if strings.HasPrefix(err.Error(), "NOGROUP") {
				// The stream or group is gone (a flush): create it again.
				_ = c.createGroup(ctx, stream, group)
			}
			c.log.Printf("vmcpkeepalive: reading %s as %s/%s: %v (retrying in 1 s)", stream, group, consumer, err)
			sleepCtx(ctx, time.Second)
			continue
		}
		for _, e := range entries {
			if c.handleEvent(ctx, stream, group, e, handler) {
				// A failed handler's entry is read again from this consumer's pending list.
				pending = true
			}
		}
	}
	return ctx.Err()
}

// sleepCtx waits d or until ctx is done (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// handleEvent decodes and hands one entry to the handler; true when it stays pending.
func (c *Client) handleEvent(ctx context.Context, stream, group string, e streamEntry, handler EventHandler) bool {
	ev, err := decodeEntry(e)
	if err != nil {
		atomic.AddUint64(&c.stats.rejected, 1)
		c.log.Printf("vmcpkeepalive: event stream %s entry %s rejected: %v", stream, e.id, err)
	} else if err := handler(ctx, ev); err != nil {
		atomic.AddUint64(&c.stats.failed, 1)
		c.log.Printf("vmcpkeepalive: event %s (%s) handler failed, delivered again later: %v", e.id, ev.Type, err)
		return true
	} else {
		atomic.AddUint64(&c.stats.handled, 1)
		if !ev.Known() {
			atomic.AddUint64(&c.stats.unknown, 1)
		}
	}
	if _, err := c.main.Do(ctx, "XACK", stream, group, e.id); err != nil {
		c.log.Printf("vmcpkeepalive: XACK %s %s %s: %v", stream, group, e.id, err)
	}
	return false
}

// permanentError: the server refused for a reason a retry does not change (no permission, wrong
// type of key, bad credentials, a command it does not know).
func permanentError(err error) bool {
	for _, prefix := range []string{"NOPERM", "WRONGTYPE", "NOAUTH", "WRONGPASS", "ERR "} {
		if strings.HasPrefix(err.Error(), prefix) || strings.Contains(err.Error(), ": "+prefix) {
			return true
		}
	}
	return false
}

func (c *Client) createGroup(ctx context.Context, stream, group string) error {
	_, err := c.main.Do(ctx, "XGROUP", "CREATE", stream, group, "$", "MKSTREAM")
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("XGROUP CREATE %s %s: %w", stream, group, err)
	}
	return nil
}

type streamEntry struct {
	id     string
	fields map[string]string
}

func decodeEntry(e streamEntry) (Event, error) {
	raw, ok := e.fields["event"]
	if !ok {
		return Event{}, errors.New("no field \"event\"")
	}
	ev, err := DecodeEvent([]byte(raw))
	ev.StreamID = e.id
	return ev, err
}

func (c *Client) readGroup(ctx context.Context, stream, group, consumer, id string, block time.Duration) ([]streamEntry, error) {
	args := []interface{}{"GROUP", group, consumer, "COUNT", eventReadCount}
	if block > 0 {
		args = append(args, "BLOCK", block.Milliseconds())
	}
	args = append(args, "STREAMS", stream, id)
	// The reply may take the whole block: the read's deadline is past it.
	readCtx, cancel := context.WithTimeout(ctx, block+5*time.Second)
	defer cancel()
	reply, err := c.main.Do(readCtx, "XREADGROUP", args...)
	if err != nil || reply == nil {
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("XREADGROUP: no reply within %v", block+5*time.Second)
		}
		return nil, err
	}
	// RESP2: [[stream, entries]]; RESP3 (go-redis): {stream: entries}.
	if m, ok := reply.(map[interface{}]interface{}); ok {
		for _, entries := range m {
			return parseEntries(entries)
		}
		return nil, nil
	}
	streams, err := replyValues(reply)
	if err != nil || len(streams) == 0 {
		return nil, err
	}
	one, err := replyValues(streams[0])
	if err != nil || len(one) != 2 {
		return nil, fmt.Errorf("XREADGROUP: unexpected reply shape")
	}
	return parseEntries(one[1])
}

func (c *Client) autoClaim(ctx context.Context, stream, group, consumer string) ([]streamEntry, error) {
	reply, err := c.main.Do(ctx, "XAUTOCLAIM", stream, group, consumer, eventClaimIdle.Milliseconds(), "0-0", "COUNT", eventReadCount)
	if err != nil {
		return nil, err
	}
	values, err := replyValues(reply)
	if err != nil || len(values) < 2 {
		return nil, err
	}
	return parseEntries(values[1])
}

// parseEntries reads [[id, [field, value, …]], …]; entries deleted meanwhile come with nil fields and are skipped.
func parseEntries(reply interface{}) ([]streamEntry, error) {
	items, err := replyValues(reply)
	if err != nil {
		return nil, err
	}
	out := make([]streamEntry, 0, len(items))
	for _, item := range items {
		pair, err := replyValues(item)
		if err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("stream entry: unexpected reply shape")
		}
		id, err := replyString(pair[0])
		if err != nil {
			return nil, err
		}
		if pair[1] == nil {
			continue
		}
		fields, err := replyStringMap(pair[1])
		if err != nil {
			return nil, err
		}
		out = append(out, streamEntry{id: id, fields: fields})
	}
	return out, nil
}
