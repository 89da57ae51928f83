package vmcpkeepalive

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sync"
	"time"
)

// The contract's limits (docs/session-messages.schema.json); a message outside them is refused
// here with an error naming the field, before it reaches Redis.
const (
	minSessionTTL      = time.Second
	maxSessionTTL      = 30 * 24 * time.Hour
	minMaxLifetime     = time.Second
	maxMaxLifetime     = 365 * 24 * time.Hour
	maxBackends        = 256
	maxTouchedBackends = 64
	maxReasonChars     = 200
	// MaxMessageBytes is the scheduler's default registration.max_message_bytes.
	MaxMessageBytes = 64 * 1024
)

var (
	idPattern             = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	idRule                = "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"
	backendSessionPattern = regexp.MustCompile(`^[\x21-\x7E]{1,512}$`)
	protocolVersionRule   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
)

// Backend is one backend of a session as registered.
type Backend struct {
	ID string
	// BackendSessionID is the backend's Mcp-Session-Id; empty = stateless (no keepalive).
	BackendSessionID string
	// ProtocolVersion is the negotiated MCP revision (YYYY-MM-DD), or empty.
	ProtocolVersion string
	// Credentials, when the backend authenticates every user; sealed with the client's key ring.
	Credentials *Credentials
}

// Message types of contract v1.
const (
	TypeSessionRegistered           = "session.registered"
	TypeSessionTouched              = "session.touched"
	TypeSessionEnded                = "session.ended"
	TypeSessionBackendReinitialized = "session.backend_reinitialized"
	TypeSessionCredentialsUpdated   = "session.credentials_updated"
)

type backendWire struct {
	BackendID        string             `json:"backendId"`
	BackendSessionID string             `json:"backendSessionId,omitempty"`
	ProtocolVersion  string             `json:"protocolVersion,omitempty"`
	Credentials      *SealedCredentials `json:"credentials,omitempty"`
}

// message is every lifecycle message's JSON; fields a type does not have stay empty and omitted.
type message struct {
	Type          string          `json:"type"`
	V             int             `json:"v"`
	SessionID     string          `json:"sessionId"`
	OccurredAt    string          `json:"occurredAt"`
	Sequence      int64           `json:"sequence"`
	ReplicaID     string          `json:"replicaId,omitempty"`
	SessionTTLMs  int64           `json:"sessionTtlMs,omitempty"`
	MaxLifetimeMs int64           `json:"maxLifetimeMs,omitempty"`
	Backends      []backendWire   `json:"backends,omitempty"`
	BackendIDs    []string        `json:"backendIds,omitempty"`
	Reason        *string         `json:"reason,omitempty"`
	BackendID     string          `json:"backendId,omitempty"`
	Credentials   json.RawMessage `json:"credentials,omitempty"`
}

// occurredAt formats a time as the contract's ISO 8601 with offset (UTC, milliseconds).
func occurredAt(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func checkID(field, id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%s %q: must be %s", field, id, idRule)
	}
	return nil
}

func checkBackend(i int, b Backend) error {
	if err := checkID(fmt.Sprintf("backends[%d].backendId", i), b.ID); err != nil {
		return err
	}
	if b.BackendSessionID != "" && !backendSessionPattern.MatchString(b.BackendSessionID) {
		return fmt.Errorf("backends[%d].backendSessionId: must be 1-512 visible ASCII characters (it is sent as the Mcp-Session-Id header)", i)
	}
	if b.ProtocolVersion != "" && !protocolVersionRule.MatchString(b.ProtocolVersion) {
		return fmt.Errorf("backends[%d].protocolVersion %q: must be an MCP revision such as 2025-06-18", i, b.ProtocolVersion)
	}
	return nil
}

// sequencer hands out the contract's sequences: ms × 1000 + n, strictly increasing per session
// in this process and ordered across replicas by their clocks (the TypeScript client's rule).
type sequencer struct {
	mu   sync.Mutex
	last map[string]int64
}

func newSequencer() *sequencer { return &sequencer{last: map[string]int64{}} }

func (s *sequencer) next(sessionID string, now time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := now.UnixMilli() * 1000
	if last, ok := s.last[sessionID]; ok && seq <= last {
		seq = last + 1
	}
	s.last[sessionID] = seq
	return seq
}

func (s *sequencer) forget(sessionID string) {
	s.mu.Lock()
	delete(s.last, sessionID)
	s.mu.Unlock()
}
