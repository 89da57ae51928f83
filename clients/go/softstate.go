package vmcpkeepalive

import (
	"context"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"
)

// backgroundSendTimeout bounds one message the client sends on its own (refresh, trailing touch).
const backgroundSendTimeout = 10 * time.Second

// maxDefaultRefresh caps the default refresh interval (a third of the session's TTL).
const maxDefaultRefresh = 10 * time.Minute

// softState re-registers every live session each interval (jittered ±10 %) with its current
// backends and credentials: whatever Redis forgets comes back within one interval. A forgotten
// (ended) session is never sent again.
type softState struct {
	c        *Client
	interval time.Duration // 0: a third of the session's TTL (≤ 10 min); < 0: off
	mu       sync.Mutex
	live     map[string]*liveSession
	stopped  bool
}

type liveSession struct {
	r     *registration
	timer *time.Timer
}

func newSoftState(c *Client, interval time.Duration) *softState {
	return &softState{c: c, interval: interval, live: map[string]*liveSession{}}
}

func (s *softState) every(r *registration) time.Duration {
	if s.interval != 0 {
		return s.interval
	}
	d := r.ttl / 3
	if d > maxDefaultRefresh {
		d = maxDefaultRefresh
	}
	return d
}

// remember starts (or restarts) the refreshes of a session with this registration.
func (s *softState) remember(sessionID string, r *registration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	if old := s.live[sessionID]; old != nil && old.timer != nil {
		old.timer.Stop()
	}
	entry := &liveSession{r: r}
	s.live[sessionID] = entry
	s.arm(sessionID, entry)
}

// arm schedules the entry's next refresh (s.mu held).
func (s *softState) arm(sessionID string, entry *liveSession) {
	every := s.every(entry.r)
	if every <= 0 {
		return
	}
	jittered := time.Duration(float64(every) * (0.9 + 0.2*rand.Float64()))
	entry.timer = time.AfterFunc(jittered, func() { s.refresh(sessionID, entry) })
}

func (s *softState) refresh(sessionID string, entry *liveSession) {
	s.mu.Lock()
	if s.stopped || s.live[sessionID] != entry {
		s.mu.Unlock()
		return
	}
	m := s.c.registrationMessage(sessionID, entry.r)
	s.arm(sessionID, entry)
	s.mu.Unlock()
	// A refresh slides the session's expiry as a touch does.
	s.c.touches.coveredByRegistration(sessionID)
	ctx, cancel := context.WithTimeout(context.Background(), backgroundSendTimeout)
	defer cancel()
	atomic.AddUint64(&s.c.stats.refreshes, 1)
	if err := s.c.publish(ctx, m); err != nil {
		s.c.backgroundFailure(err)
	}
}

// update changes a live session's registration for later refreshes.
func (s *softState) update(sessionID string, change func(b *backendWire) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	entry := s.live[sessionID]
	if entry == nil {
		return
	}
	backends := make([]backendWire, len(entry.r.backends))
	copy(backends, entry.r.backends)
	changed := false
	for i := range backends {
		if change(&backends[i]) {
			changed = true
		}
	}
	if changed {
		r := *entry.r
		r.backends = backends
		entry.r = &r
	}
}

func (s *softState) updateBackend(sessionID, backendID string, b ReinitializedBackend) {
	s.update(sessionID, func(w *backendWire) bool {
		if w.BackendID != backendID {
			return false
		}
		w.BackendSessionID, w.ProtocolVersion = b.BackendSessionID, b.ProtocolVersion
		return true
	})
}

func (s *softState) updateCredentials(sessionID, backendID string, sealed SealedCredentials) {
	s.update(sessionID, func(w *backendWire) bool {
		if w.BackendID != backendID {
			return false
		}
		w.Credentials = &sealed
		return true
	})
}

func (s *softState) forget(sessionID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if entry := s.live[sessionID]; entry != nil && entry.timer != nil {
		entry.timer.Stop()
	}
	delete(s.live, sessionID)
}

func (s *softState) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for id, entry := range s.live {
		if entry.timer != nil {
			entry.timer.Stop()
		}
		delete(s.live, id)
	}
}

// debouncer folds touches per session: the first is sent at once; later ones within the interval
// fold into one trailing touch sent at its end, which re-arms the interval.
type debouncer struct {
	c        *Client
	interval time.Duration // < 0: no debounce
	mu       sync.Mutex
	entries  map[string]*touchEntry
	closed   bool
}

type touchEntry struct {
	timer   *time.Timer
	pending *pendingTouch
}

type pendingTouch struct {
	at          time.Time
	backends    []string
	seen        map[string]bool
	credentials map[string]SealedCredentials
	// earliestBackendUse dates the trailing touch: a backend's traffic is never reported later
	// than it happened.
	earliestBackendUse time.Time
}

func newDebouncer(c *Client, interval time.Duration) *debouncer {
	return &debouncer{c: c, interval: interval, entries: map[string]*touchEntry{}}
}

func (d *debouncer) touch(ctx context.Context, sessionID string, backendIDs []string, sealed map[string]SealedCredentials) error {
	now := d.c.now()
	d.mu.Lock()
	if d.interval < 0 || d.closed {
		d.mu.Unlock()
		return d.c.sendTouch(ctx, sessionID, now, backendIDs, sealed)
	}
	entry := d.entries[sessionID]
	if entry == nil {
		d.arm(sessionID)
		d.mu.Unlock()
		return d.c.sendTouch(ctx, sessionID, now, backendIDs, sealed)
	}
	p := entry.pending
	if p == nil {
		p = &pendingTouch{seen: map[string]bool{}, credentials: map[string]SealedCredentials{}}
		entry.pending = p
	}
	p.at = now
	for id, s := range sealed {
		p.credentials[id] = s
	}
	for _, id := range backendIDs {
		if !p.seen[id] {
			p.seen[id] = true
			p.backends = append(p.backends, id)
			if p.earliestBackendUse.IsZero() {
				p.earliestBackendUse = now
			}
		}
	}
	d.mu.Unlock()
	atomic.AddUint64(&d.c.stats.folded, 1)
	return nil
}

// arm opens a debounce interval for the session (d.mu held).
func (d *debouncer) arm(sessionID string) {
	entry := &touchEntry{}
	entry.timer = time.AfterFunc(d.interval, func() { d.fire(sessionID, entry) })
	d.entries[sessionID] = entry
}

func (d *debouncer) fire(sessionID string, entry *touchEntry) {
	d.mu.Lock()
	if d.entries[sessionID] != entry {
		d.mu.Unlock()
		return
	}
	delete(d.entries, sessionID)
	p := entry.pending
	if p == nil || d.closed {
		d.mu.Unlock()
		return
	}
	d.arm(sessionID)
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), backgroundSendTimeout)
	defer cancel()
	if err := d.send(ctx, sessionID, p); err != nil {
		d.c.backgroundFailure(err)
	}
}

func (d *debouncer) send(ctx context.Context, sessionID string, p *pendingTouch) error {
	at := p.at
	if !p.earliestBackendUse.IsZero() {
		at = p.earliestBackendUse
	}
	return d.c.sendTouch(ctx, sessionID, at, p.backends, p.credentials)
}

// take ends the session's interval and returns its pending touch (d.mu held).
func (d *debouncer) take(sessionID string) *pendingTouch {
	entry := d.entries[sessionID]
	if entry == nil {
		return nil
	}
	entry.timer.Stop()
	delete(d.entries, sessionID)
	return entry.pending
}

// drop forgets the session's debounce and its pending touch (the session ended).
func (d *debouncer) drop(sessionID string) {
	d.mu.Lock()
	d.take(sessionID)
	d.mu.Unlock()
}

// coveredByRegistration: a registration was just sent; it slides the session's expiry as a touch
// does, so a pending touch is dropped — unless it reports backend traffic, which a registration
// does not carry (the credentials it carries, the registration carries too).
func (d *debouncer) coveredByRegistration(sessionID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if entry := d.entries[sessionID]; entry != nil && (entry.pending == nil || len(entry.pending.backends) == 0) {
		d.take(sessionID)
	}
}

// flush sends every pending trailing touch now and stops every timer; later touches are sent at once.
func (d *debouncer) flush(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	pending := map[string]*pendingTouch{}
	for id := range d.entries {
		if p := d.take(id); p != nil {
			pending[id] = p
		}
	}
	d.mu.Unlock()
	var first error
	for id, p := range pending {
		if err := d.send(ctx, id, p); err != nil && first == nil {
			first = err
		}
	}
	return first
}
