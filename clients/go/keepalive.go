package vmcpkeepalive

import (
	"context"
	"time"
)

// Keepalive is what a vMCP's session manager holds: a *Client, or Noop where a deployment runs
// without keepalive (and a fake of its own in the vMCP's tests).
type Keepalive interface {
	RegisterSession(ctx context.Context, sessionID string, ttl, maxLifetime time.Duration, backends []Backend) error
	Touch(ctx context.Context, sessionID string, backendIDs []string, credentials map[string]Credentials) error
	UpdateCredentials(ctx context.Context, sessionID, backendID string, credentials Credentials) error
	EndSession(ctx context.Context, sessionID, reason string) error
	ReadEvents(ctx context.Context, group, consumer string, handler EventHandler) error
	ReinitializeBackend(ctx context.Context, sessionID, backendID string, fn func(ctx context.Context) (ReinitializedBackend, error)) (ReinitializeResult, error)
	Close(ctx context.Context) error
}

// Noop is a Keepalive that keeps nothing alive: calls succeed and send nothing, ReadEvents waits
// for ctx, and ReinitializeBackend runs fn (the vMCP still needs its new backend session) and
// reports Lock held (no worker can race it) and State ReinitUnknownPair (no pair to store it in).
type Noop struct{}

var _ Keepalive = Noop{}

// RegisterSession does nothing.
func (Noop) RegisterSession(context.Context, string, time.Duration, time.Duration, []Backend) error {
	return nil
}

// Touch does nothing.
func (Noop) Touch(context.Context, string, []string, map[string]Credentials) error { return nil }

// UpdateCredentials does nothing.
func (Noop) UpdateCredentials(context.Context, string, string, Credentials) error { return nil }

// EndSession does nothing.
func (Noop) EndSession(context.Context, string, string) error { return nil }

// ReadEvents returns ctx.Err() once ctx is done; there are no events.
func (Noop) ReadEvents(ctx context.Context, _, _ string, _ EventHandler) error {
	<-ctx.Done()
	return ctx.Err()
}

// ReinitializeBackend runs fn without a lock (no worker ever calls the backend).
func (Noop) ReinitializeBackend(ctx context.Context, _, _ string, fn func(ctx context.Context) (ReinitializedBackend, error)) (ReinitializeResult, error) {
	b, err := fn(ctx)
	return ReinitializeResult{Backend: b, Lock: ReinitLockHeld, State: ReinitUnknownPair}, err
}

// Close does nothing.
func (Noop) Close(context.Context) error { return nil }
