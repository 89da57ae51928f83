package vmcpkeepalive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Event types of contract v1 (docs/vmcp-events.schema.json).
const (
	EventBackendSessionExpired = "backend.session_expired"
	EventBreakerOpened         = "backend.breaker_opened"
	EventBreakerClosed         = "backend.breaker_closed"
)

// Event is one entry of the event stream. Fields a type does not have are empty.
type Event struct {
	// StreamID is the entry's id in the event stream.
	StreamID   string `json:"-"`
	Type       string `json:"type"`
	V          int    `json:"v"`
	OccurredAt string `json:"occurredAt"`
	SessionID  string `json:"sessionId,omitempty"`
	BackendID  string `json:"backendId"`
	// BackendSessionID (backend.session_expired) is the backend session that answered 404.
	BackendSessionID string `json:"backendSessionId,omitempty"`
	// Reason, ConsecutiveFailures, ProbeAt: backend.breaker_opened.
	Reason              string `json:"reason,omitempty"`
	ConsecutiveFailures int    `json:"consecutiveFailures,omitempty"`
	ProbeAt             string `json:"probeAt,omitempty"`
	// Raw is the event's JSON as published.
	Raw json.RawMessage `json:"-"`
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

// ReadEvents reads the event stream as `consumer` of consumer group `group` until ctx is done
// (then returns nil). The group is created at the end of the stream when it does not exist
// (XGROUP CREATE … $ MKSTREAM): a deployment sees the events from its first start on. Each
// vMCP deployment uses its own group, each replica its own consumer name; an event goes to one
// consumer of the group, so handlers act on state every replica shares.
//
// Order of reads: this consumer's own pending entries first (a restart after a crash), then new
// entries (XREADGROUP … >), and every ClaimIdle the entries other consumers left unacknowledged
// for that long (XAUTOCLAIM). An entry that is not a valid event is logged, counted and
// acknowledged, never passed on.
func (c *Client) ReadEvents(ctx context.Context, group, consumer string, handler EventHandler) error {
	if group == "" || consumer == "" {
		return errors.New("ReadEvents: group and consumer must not be empty")
	}
	stream := c.keys.SessionEvents()
	if err := c.createGroup(ctx, stream, group); err != nil {
		return err
	}
	conn, err := c.main.get(ctx, stream)
	if err != nil {
		return fmt.Errorf("event stream %s: %w", stream, err)
	}
	defer func() { conn.Close() }()
	pending := true
	lastClaim := time.Time{}
	for ctx.Err() == nil {
		var entries []streamEntry
		var err error
		switch {
		case pending:
			entries, err = readGroup(ctx, conn, stream, group, consumer, "0", 0)
			pending = len(entries) > 0
		case time.Since(lastClaim) >= eventClaimIdle:
			lastClaim = time.Now()
			entries, err = autoClaim(ctx, conn, stream, group, consumer)
		default:
			entries, err = readGroup(ctx, conn, stream, group, consumer, ">", eventBlock)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Printf("vmcpkeepalive: reading %s as %s/%s: %v (retrying in 1 s)", stream, group, consumer, err)
			conn.Close()
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			if conn, err = c.main.get(ctx, stream); err != nil {
				return fmt.Errorf("event stream %s: %w", stream, err)
			}
			continue
		}
		for _, e := range entries {
			if c.handleEvent(ctx, conn, stream, group, e, handler) {
				// A failed handler's entry is read again from this consumer's pending list.
				pending = true
			}
		}
	}
	return nil
}

// handleEvent decodes and hands one entry to the handler; true when it stays pending.
func (c *Client) handleEvent(ctx context.Context, conn redis.Conn, stream, group string, e streamEntry, handler EventHandler) bool {
	ev, err := decodeEvent(e)
	if err != nil {
		atomic.AddUint64(&c.stats.rejected, 1)
		c.log.Printf("vmcpkeepalive: event stream %s entry %s rejected: %v", stream, e.id, err)
	} else if err := handler(ctx, ev); err != nil {
		atomic.AddUint64(&c.stats.failed, 1)
		c.log.Printf("vmcpkeepalive: event %s (%s) handler failed, delivered again later: %v", e.id, ev.Type, err)
		return true
	} else {
		atomic.AddUint64(&c.stats.handled, 1)
	}
	if _, err := do(ctx, conn, 0, "XACK", stream, group, e.id); err != nil {
		c.log.Printf("vmcpkeepalive: XACK %s %s %s: %v", stream, group, e.id, err)
	}
	return false
}

func (c *Client) createGroup(ctx context.Context, stream, group string) error {
	conn, err := c.main.get(ctx, stream)
	if err != nil {
		return fmt.Errorf("event stream %s: %w", stream, err)
	}
	defer conn.Close()
	_, err = do(ctx, conn, 0, "XGROUP", "CREATE", stream, group, "$", "MKSTREAM")
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("XGROUP CREATE %s %s: %w", stream, group, err)
	}
	return nil
}

type streamEntry struct {
	id     string
	fields map[string]string
}

func decodeEvent(e streamEntry) (Event, error) {
	raw, ok := e.fields["event"]
	if !ok {
		return Event{}, errors.New("no field \"event\"")
	}
	var ev Event
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return Event{}, fmt.Errorf("invalid event JSON: %w", err)
	}
	switch ev.Type {
	case EventBackendSessionExpired:
		if ev.SessionID == "" || ev.BackendID == "" || ev.BackendSessionID == "" {
			return Event{}, fmt.Errorf("%s without sessionId, backendId or backendSessionId", ev.Type)
		}
	case EventBreakerOpened, EventBreakerClosed:
		if ev.BackendID == "" {
			return Event{}, fmt.Errorf("%s without backendId", ev.Type)
		}
	default:
		return Event{}, fmt.Errorf("unknown event type %q", ev.Type)
	}
	ev.StreamID = e.id
	ev.Raw = json.RawMessage(raw)
	return ev, nil
}

func readGroup(ctx context.Context, conn redis.Conn, stream, group, consumer, id string, block time.Duration) ([]streamEntry, error) {
	args := redis.Args{"GROUP", group, consumer, "COUNT", eventReadCount}
	if block > 0 {
		args = args.Add("BLOCK", block.Milliseconds())
	}
	args = args.Add("STREAMS", stream, id)
	reply, err := do(ctx, conn, block+5*time.Second, "XREADGROUP", args...)
	if err != nil || reply == nil {
		return nil, err
	}
	streams, err := redis.Values(reply, nil)
	if err != nil || len(streams) == 0 {
		return nil, err
	}
	one, err := redis.Values(streams[0], nil)
	if err != nil || len(one) != 2 {
		return nil, fmt.Errorf("XREADGROUP: unexpected reply shape")
	}
	return parseEntries(one[1])
}

func autoClaim(ctx context.Context, conn redis.Conn, stream, group, consumer string) ([]streamEntry, error) {
	reply, err := redis.Values(do(ctx, conn, 0, "XAUTOCLAIM", stream, group, consumer, eventClaimIdle.Milliseconds(), "0-0", "COUNT", eventReadCount))
	if err != nil || len(reply) < 2 {
		return nil, err
	}
	return parseEntries(reply[1])
}

// parseEntries reads [[id, [field, value, …]], …]; entries deleted meanwhile come with nil fields and are skipped.
func parseEntries(reply interface{}) ([]streamEntry, error) {
	items, err := redis.Values(reply, nil)
	if err != nil {
		return nil, err
	}
	out := make([]streamEntry, 0, len(items))
	for _, item := range items {
		pair, err := redis.Values(item, nil)
		if err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("stream entry: unexpected reply shape")
		}
		id, err := redis.String(pair[0], nil)
		if err != nil {
			return nil, err
		}
		if pair[1] == nil {
			continue
		}
		fields, err := redis.StringMap(pair[1], nil)
		if err != nil {
			return nil, err
		}
		out = append(out, streamEntry{id: id, fields: fields})
	}
	return out, nil
}
