package vmcpkeepalive

import (
	"context"
	"fmt"
	"strconv"

	"github.com/gomodule/redigo/redis"
)

// ReinitializedBackend is what a re-initialize callback returns: the new backend session.
type ReinitializedBackend struct {
	BackendSessionID string
	// ProtocolVersion is the negotiated MCP revision, or empty.
	ProtocolVersion string
}

// What happened to the pair lock during a re-initialize (the TypeScript client's values).
const (
	// ReinitLockHeld: taken within LockTimeout and still valid when the new state was written.
	ReinitLockHeld = "held"
	// ReinitLockExpired: taken, but the callback outlasted ReinitializeLockTTL.
	ReinitLockExpired = "expired"
	// ReinitLockBusy: still held by someone else after LockTimeout; went ahead without it.
	ReinitLockBusy = "busy"
	// ReinitLockUnavailable: no quorum of lock nodes; went ahead without it.
	ReinitLockUnavailable = "unavailable"
)

// What happened to the stored pair.
const (
	// ReinitWritten: new backend session stored, epoch bumped.
	ReinitWritten = "written"
	// ReinitUnknownPair: no such pair (session ended, reaped or never registered with this backend).
	ReinitUnknownPair = "unknown_pair"
	// ReinitWriteFailed: Redis refused the write (logged); the pair keeps its old backend session.
	ReinitWriteFailed = "write_failed"
	// ReinitInvalidResult: the callback returned no valid backend session id or protocol version.
	ReinitInvalidResult = "invalid_result"
)

// ReinitializeResult says what ReinitializeBackend did.
type ReinitializeResult struct {
	Backend ReinitializedBackend
	Lock    string
	State   string
	// Epoch of the pair after the write (when State is ReinitWritten).
	Epoch int64
	// SchedulerRestoreRequested: the pair had expired and session.backend_reinitialized was published.
	SchedulerRestoreRequested bool
}

// ReinitializeBackend re-initializes one backend of a session under the pair lock:
//  1. takes the pair lock (waits up to LockTimeout while busy; not at all when unavailable);
//  2. runs fn, which opens the new backend session (MCP initialize);
//  3. stores it with the re-initialize script (new id, epoch + 1, an expired pair active again);
//  4. when the pair had expired, publishes session.backend_reinitialized so the scheduler
//     restores its job scheduler (while the lock is held, as the TypeScript client does);
//  5. releases the lock.
//
// fn always runs and a valid result is always stored, with or without the lock (the epoch bump
// fences out any keepalive that read the old state); Lock in the result says which. fn's own
// error is returned after the lock is released; lock and Redis problems are in the result and
// logged, not returned.
func (c *Client) ReinitializeBackend(ctx context.Context, sessionID, backendID string, fn func(ctx context.Context) (ReinitializedBackend, error)) (ReinitializeResult, error) {
	if err := checkID("sessionId", sessionID); err != nil {
		return ReinitializeResult{}, err
	}
	if err := checkID("backendId", backendID); err != nil {
		return ReinitializeResult{}, err
	}
	resource := c.keys.PairLock(sessionID, backendID)
	held, outcome, err := c.lock.tryLock(ctx, resource, c.lockTTL)
	if outcome == LockBusy {
		held, outcome, err = c.lock.lock(ctx, resource, c.lockTTL, c.lockTimeout)
	}
	if held == nil {
		c.log.Printf("vmcpkeepalive: pair lock %s not obtained (%s: %v); re-initializing without it", resource, outcome, err)
	} else {
		defer func() {
			if err := held.Release(context.Background()); err != nil {
				c.log.Printf("vmcpkeepalive: releasing pair lock %s: %v (it expires on its own)", resource, err)
			}
		}()
	}

	value, fnErr := fn(ctx)
	result := ReinitializeResult{Backend: value}
	switch {
	case held != nil && held.IsValid():
		result.Lock = ReinitLockHeld
	case held != nil:
		result.Lock = ReinitLockExpired
	case outcome == LockBusy:
		result.Lock = ReinitLockBusy
	default:
		result.Lock = ReinitLockUnavailable
	}
	if fnErr != nil {
		return result, fnErr
	}
	if err := checkBackend(0, Backend{ID: backendID, BackendSessionID: value.BackendSessionID, ProtocolVersion: value.ProtocolVersion}); err != nil || value.BackendSessionID == "" {
		c.log.Printf("vmcpkeepalive: re-initialize of %s/%s returned an invalid backend session (%v); nothing stored", sessionID, backendID, err)
		result.State = ReinitInvalidResult
		return result, nil
	}
	epoch, previous, known, err := c.reinitializePair(ctx, sessionID, backendID, value)
	switch {
	case err != nil:
		c.log.Printf("vmcpkeepalive: could not store the re-initialized backend session of %s/%s: %v", sessionID, backendID, err)
		result.State = ReinitWriteFailed
		return result, nil
	case !known:
		c.log.Printf("vmcpkeepalive: re-initialized %s/%s, a pair that is not registered (ended or reaped); nothing stored", sessionID, backendID)
		result.State = ReinitUnknownPair
		return result, nil
	}
	result.State = ReinitWritten
	result.Epoch = epoch
	if previous == "expired" {
		if err := c.backendReinitialized(ctx, sessionID, backendID); err != nil {
			c.log.Printf("vmcpkeepalive: could not ask the scheduler to restore %s/%s: %v", sessionID, backendID, err)
		} else {
			result.SchedulerRestoreRequested = true
		}
	}
	return result, nil
}

// reinitializePair runs the re-initialize script (EVALSHA, EVAL when not loaded yet) on the pair hash.
func (c *Client) reinitializePair(ctx context.Context, sessionID, backendID string, b ReinitializedBackend) (epoch int64, previous string, known bool, err error) {
	key := c.keys.Pair(sessionID, backendID)
	conn, err := c.main.get(ctx, key)
	if err != nil {
		return 0, "", false, err
	}
	defer conn.Close()
	reply, err := redis.Values(evalScript(ctx, conn, reinitializePairScript, key, b.BackendSessionID, b.ProtocolVersion, strconv.FormatInt(c.now().UnixMilli(), 10)))
	if err != nil {
		return 0, "", false, err
	}
	status, _ := redis.String(reply[0], nil)
	if status != "applied" {
		return 0, "", false, nil
	}
	if len(reply) != 3 {
		return 0, "", false, fmt.Errorf("re-initialize script answered %d values, expected 3", len(reply))
	}
	epoch, err = redis.Int64(reply[1], nil)
	if err != nil {
		return 0, "", false, err
	}
	previous, err = redis.String(reply[2], nil)
	return epoch, previous, true, err
}
