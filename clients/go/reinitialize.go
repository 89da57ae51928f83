package vmcpkeepalive

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// ReinitializedBackend is what a re-initialize callback returns: the new backend session.
type ReinitializedBackend struct {
	BackendSessionID string
	// ProtocolVersion is the negotiated MCP revision, or empty.
	ProtocolVersion string
}

// ReinitializeLock says what happened to the pair lock during a re-initialize (the TypeScript
// client's values).
type ReinitializeLock string

const (
	// ReinitLockHeld: taken within LockTimeout and still valid when the new state was written.
	ReinitLockHeld ReinitializeLock = "held"
	// ReinitLockExpired: taken, but the callback outlasted ReinitializeLockTTL.
	ReinitLockExpired ReinitializeLock = "expired"
	// ReinitLockBusy: still held by someone else after LockTimeout; went ahead without it.
	ReinitLockBusy ReinitializeLock = "busy"
	// ReinitLockUnavailable: no quorum of lock nodes; went ahead without it.
	ReinitLockUnavailable ReinitializeLock = "unavailable"
)

// ReinitializeState says what happened to the stored pair (the TypeScript client's values).
type ReinitializeState string

const (
	// ReinitWritten: new backend session stored, epoch bumped.
	ReinitWritten ReinitializeState = "written"
	// ReinitUnknownPair: no such pair (session ended, reaped or never registered with this
	// backend); nothing stored. Not an error.
	ReinitUnknownPair ReinitializeState = "unknown_pair"
	// ReinitWriteFailed: Redis refused the write; the pair keeps its old backend session. The
	// error returned with it says why (errors.Is(err, ErrReinitializeWrite)).
	ReinitWriteFailed ReinitializeState = "write_failed"
	// ReinitInvalidResult: the callback returned no valid backend session id or protocol version;
	// nothing stored. The error returned with it says why (errors.Is(err, ErrInvalidResult)).
	ReinitInvalidResult ReinitializeState = "invalid_result"
)

// ErrReinitializeWrite wraps the Redis error of a re-initialize whose write failed.
var ErrReinitializeWrite = errors.New("re-initialized backend session not stored")

// ErrInvalidResult: the re-initialize callback returned an invalid backend session.
var ErrInvalidResult = errors.New("re-initialize callback returned an invalid backend session")

// ReinitializeResult says what ReinitializeBackend did.
type ReinitializeResult struct {
	Backend ReinitializedBackend
	Lock    ReinitializeLock
	// LockErr is why the lock was unavailable (Lock == ReinitLockUnavailable).
	LockErr error
	State   ReinitializeState
	// Epoch of the pair after the write (when State is ReinitWritten).
	Epoch int64
	// SchedulerRestoreRequested: the pair had expired and session.backend_reinitialized was published.
	SchedulerRestoreRequested bool
	// RestoreErr is why session.backend_reinitialized could not be published (the pair had
	// expired; the vMCP's next refresh or registration restores it).
	RestoreErr error
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
// fences out any keepalive that read the old state); Lock in the result says which. The error
// is fn's own (returned after the lock is released), or the reason nothing was stored (State
// ReinitWriteFailed or ReinitInvalidResult). A pair that no longer exists is State
// ReinitUnknownPair with a nil error. A lock that could not be taken is in the result only: the
// re-initialize went ahead.
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
	result := ReinitializeResult{Backend: value, LockErr: err}
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
		if err == nil {
			err = errors.New("empty backend session id")
		}
		result.State = ReinitInvalidResult
		return result, fmt.Errorf("%s/%s: %w: %v", sessionID, backendID, ErrInvalidResult, err)
	}
	epoch, previous, known, err := c.reinitializePair(ctx, sessionID, backendID, value)
	switch {
	case err != nil:
		result.State = ReinitWriteFailed
		return result, fmt.Errorf("%s/%s: %w: %v", sessionID, backendID, ErrReinitializeWrite, err)
	case !known:
		c.log.Printf("vmcpkeepalive: re-initialized %s/%s, a pair that is not registered (ended or reaped); nothing stored", sessionID, backendID)
		result.State = ReinitUnknownPair
		return result, nil
	}
	result.State = ReinitWritten
	result.Epoch = epoch
	c.soft.updateBackend(sessionID, backendID, value)
	if previous == "expired" {
		if err := c.backendReinitialized(ctx, sessionID, backendID); err != nil {
			result.RestoreErr = err
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
	raw, err := evalScript(ctx, c.main, reinitializePairScript, key, b.BackendSessionID, b.ProtocolVersion, strconv.FormatInt(c.now().UnixMilli(), 10))
	if err != nil {
		return 0, "", false, err
	}
	reply, err := replyValues(raw)
	if err != nil || len(reply) == 0 {
		return 0, "", false, fmt.Errorf("re-initialize script: unexpected reply %v (%v)", raw, err)
	}
	status, _ := replyString(reply[0])
	if status != "applied" {
		return 0, "", false, nil
	}
	// Values the script may add later are ignored (the contract's evolution rule).
	if len(reply) < 3 {
		return 0, "", false, fmt.Errorf("re-initialize script answered %d values, expected 3", len(reply))
	}
	epoch, err = replyInt64(reply[1])
	if err != nil {
		return 0, "", false, err
	}
	previous, err = replyString(reply[2])
	return epoch, previous, true, err
}
