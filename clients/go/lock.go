package vmcpkeepalive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	mrand "math/rand"
	"strings"
	"sync"
	"time"
)

// Redlock's allowance for clock drift: a lock counts as held until ttl − 1 % − 2 ms after the
// attempt started (the TypeScript locker's figure).
const driftFactor = 0.01

// A waiter retries every 10 ms ± 5 ms: holders keep a pair lock for one keepalive call.
const retryDelay = 10 * time.Millisecond

// How long one lock node may take to answer before it counts as a vote against.
const lockNodeTimeout = 500 * time.Millisecond

// LockOutcome says why a lock was not taken.
type LockOutcome string

const (
	// LockAcquired: the lock is held.
	LockAcquired LockOutcome = "acquired"
	// LockBusy: someone else holds it (a worker's keepalive, another re-initialize).
	LockBusy LockOutcome = "locked"
	// LockUnavailable: the lock nodes could not form a quorum (Redis down).
	LockUnavailable LockOutcome = "lock_unavailable"
)

// HeldLock is a held pair lock.
type HeldLock struct {
	Resource   string
	token      string
	validUntil time.Time
	l          *locker
}

// IsValid is false once the TTL (less the drift allowance) has run out: the lock may then belong to someone else.
func (h *HeldLock) IsValid() bool { return time.Now().Before(h.validUntil) }

// Release deletes the lock on every node where this token still holds it (compare-and-delete).
// An unreleased lock expires on its own.
func (h *HeldLock) Release(ctx context.Context) error {
	return h.l.releaseAll(ctx, h.Resource, h.token)
}

// locker is the pair lock over one node (SET NX PX + compare-and-delete) or a Redlock quorum.
type locker struct {
	nodes  []Redis
	labels []string
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// setNX is one node's vote: true = set, false = held by someone else, error = node failed.
func setNX(ctx context.Context, node Redis, resource, token string, ttl time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, lockNodeTimeout)
	defer cancel()
	reply, err := node.Do(ctx, "SET", resource, token, "NX", "PX", ttl.Milliseconds())
	if err != nil {
		return false, err
	}
	return reply != nil, nil
}

func releaseOne(ctx context.Context, node Redis, resource, token string) error {
	ctx, cancel := context.WithTimeout(ctx, lockNodeTimeout)
	defer cancel()
	_, err := evalScript(ctx, node, releaseLockScript, resource, token)
	return err
}

func (l *locker) releaseAll(ctx context.Context, resource, token string) error {
	errs := make([]error, len(l.nodes))
	var wg sync.WaitGroup
	for i, n := range l.nodes {
		wg.Add(1)
		go func(i int, n Redis) {
			defer wg.Done()
			errs[i] = releaseOne(ctx, n, resource, token)
		}(i, n)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// tryLock makes one attempt: SET NX PX with a fresh token on every node at once; held when a
// quorum (⌊N/2⌋+1) said yes within the TTL. A failed attempt is undone on the nodes that said yes.
func (l *locker) tryLock(ctx context.Context, resource string, ttl time.Duration) (*HeldLock, LockOutcome, error) {
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	token, err := randomToken()
	if err != nil {
		return nil, LockUnavailable, err
	}
	started := time.Now()
	type vote struct {
		ok  bool
		err error
	}
	votes := make([]vote, len(l.nodes))
	var wg sync.WaitGroup
	for i, n := range l.nodes {
		wg.Add(1)
		go func(i int, n Redis) {
			defer wg.Done()
			ok, err := setNX(ctx, n, resource, token, ttl)
			votes[i] = vote{ok, err}
		}(i, n)
	}
	wg.Wait()
	quorum := len(l.nodes)/2 + 1
	yes, busy := 0, 0
	var failures []string
	for i, v := range votes {
		switch {
		case v.err != nil:
			label := "the main Redis"
			if i < len(l.labels) {
				label = l.labels[i]
			}
			failures = append(failures, fmt.Sprintf("%s: %v", label, v.err))
		case v.ok:
			yes++
		default:
			busy++
		}
	}
	drift := time.Duration(math.Round(driftFactor*float64(ttl.Milliseconds())))*time.Millisecond + 2*time.Millisecond
	validUntil := started.Add(ttl - drift)
	if yes >= quorum && time.Now().Before(validUntil) {
		return &HeldLock{Resource: resource, token: token, validUntil: validUntil, l: l}, LockAcquired, nil
	}
	if yes > 0 {
		_ = l.releaseAll(context.Background(), resource, token)
	}
	if busy >= quorum {
		return nil, LockBusy, nil
	}
	if len(failures) == 0 {
		// Split votes (or the quorum came too late): someone else got there first.
		return nil, LockBusy, nil
	}
	return nil, LockUnavailable, fmt.Errorf("pair lock %s unavailable: %d of %d lock nodes answered, %d needed (%s)", resource, len(l.nodes)-len(failures), len(l.nodes), quorum, strings.Join(failures, "; "))
}

// lock retries tryLock until it holds the lock or `wait` has passed. An unavailable quorum is
// not waited for: while the nodes are down no worker can take the lock either.
func (l *locker) lock(ctx context.Context, resource string, ttl, wait time.Duration) (*HeldLock, LockOutcome, error) {
	deadline := time.Now().Add(wait)
	for {
		held, outcome, err := l.tryLock(ctx, resource, ttl)
		if outcome != LockBusy || time.Now().Add(retryDelay).After(deadline) {
			return held, outcome, err
		}
		jitter := time.Duration(mrand.Int63n(int64(retryDelay))) - retryDelay/2
		select {
		case <-ctx.Done():
			return nil, LockUnavailable, ctx.Err()
		case <-time.After(retryDelay + jitter):
		}
	}
}

// TryPairLock takes the pair lock once, without waiting, for `ttl` — the primitive a vMCP needs
// besides ReinitializeBackend. It answers LockBusy or LockUnavailable (with the error) when it
// did not take it.
func (c *Client) TryPairLock(ctx context.Context, sessionID, backendID string, ttl time.Duration) (*HeldLock, LockOutcome, error) {
	return c.lock.tryLock(ctx, c.keys.PairLock(sessionID, backendID), ttl)
}
