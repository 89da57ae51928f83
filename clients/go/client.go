package vmcpkeepalive

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
)

// Logger receives the client's log lines. The client writes nothing unless one is given.
type Logger interface {
	Printf(format string, args ...interface{})
}

type silentLogger struct{}

func (silentLogger) Printf(string, ...interface{}) {}

// Options configure a Client. Exactly one of Redis, Pool, Address, Cluster, ClusterNodes and
// Sentinel names the main Redis (the one the deployment's schedulers and workers use).
type Options struct {
	// Redis is any Redis library behind the Redis interface (e.g. a go-redis adapter, see the
	// README); the caller's to close. Set RedisIsCluster when it talks to a Redis Cluster.
	Redis Redis
	// RedisIsCluster: Options.Redis is a Redis Cluster client (keys are then hash-tagged).
	RedisIsCluster bool
	// Pool is a redigo pool on a standalone Redis (the caller's to close).
	Pool *redis.Pool
	// Address of a standalone Redis: "host:port" or a redis:// / rediss:// URL (user and
	// password in the URL).
	Address string
	// Cluster is a redisc cluster (the caller's to close). Keys are then hash-tagged.
	Cluster *redisc.Cluster
	// ClusterNodes are seed nodes of a Redis Cluster ("host:port" or URLs); the client opens and
	// closes the cluster itself.
	ClusterNodes []string
	// Sentinel names a Redis managed by Sentinel (the deployment's redis.mode: sentinel).
	Sentinel *SentinelOptions
	// Prefix is the deployment's redis.prefix. Default "vmk".
	Prefix string
	// ReplicaID names this vMCP replica in registrations (required).
	ReplicaID string
	// Shards is the deployment's keepalive.shards. Default 16 on a Cluster, else 1.
	Shards int
	// LockNodes are the deployment's lock.redis_urls ("host:port" or URLs): independent Redis
	// servers over which the pair lock is a Redlock quorum. Empty: the lock lives on the main Redis.
	LockNodes []string
	// LockRedis, instead of LockNodes, are the lock nodes as Redis values (the caller's to close).
	LockRedis []Redis
	// KeyRing seals session credentials; needed only when credentials are sent.
	KeyRing *KeyRing
	// LockTimeout is how long ReinitializeBackend waits for a busy pair lock (just above the
	// workers' lock TTL). Default 22 s.
	LockTimeout time.Duration
	// ReinitializeLockTTL is the pair lock's TTL while the re-initialize callback runs. Default 30 s.
	ReinitializeLockTTL time.Duration
	// RefreshInterval is the soft-state period: every live session this client registered is
	// registered again this often (jittered ±10 %, its current backends and credentials, a new
	// sequence), so whatever Redis forgets — a FLUSHALL, a failover that lost writes, a restore —
	// comes back within one interval. An ended session is never sent again. Default (0): a third
	// of the session's TTL, at most 10 minutes, as the TypeScript client. Negative: no refreshes.
	RefreshInterval time.Duration
	// TouchInterval debounces Touch: at most one session.touched per session per interval; the
	// first touch goes at once, later ones fold into one sent at the end of the interval.
	// Default 30 s. Negative: every Touch is sent at once.
	TouchInterval time.Duration
	// ConnectTimeout bounds each connection the client opens (ctx may end it sooner). Default 5 s.
	ConnectTimeout time.Duration
	// TLSConfig turns TLS on for every connection the client opens — Address, ClusterNodes,
	// Sentinel (the Sentinels and the master), LockNodes — with your CA (RootCAs), client
	// certificate (Certificates) and ServerName. Nil: TLS only for rediss:// URLs, with the
	// system's trust store.
	TLSConfig *tls.Config
	// Logger receives what the client has to say; nil: nothing is written.
	Logger Logger
	// OnError receives the failures of what the client sends on its own — soft-state refreshes,
	// trailing touches — which no call returns. They are also counted (Stats().PublishFailures).
	OnError func(error)
}

// Stats are the client's counters (read with Client.Stats).
type Stats struct {
	MessagesPublished uint64
	PublishFailures   uint64
	// Refreshes counts soft-state registrations sent.
	Refreshes uint64
	// TouchesFolded counts Touch calls folded into a trailing touch (not sent on their own).
	TouchesFolded uint64
	EventsHandled uint64
	// EventsOfUnknownType counts events of a type this client does not know, handed over as they
	// are (not an error: the contract grows by adding event types).
	EventsOfUnknownType uint64
	// EventsRejected counts entries of the event stream that are not a valid event (acknowledged and skipped).
	EventsRejected uint64
	// EventsFailed counts handler errors (the entry stays pending and is delivered again).
	EventsFailed uint64
}

// Client is a vMCP replica's side of the contract: lifecycle messages through the ingress
// stream, events from the event stream, and the pair lock with the re-initialize script. It is
// safe for concurrent use.
type Client struct {
	keys        *Keys
	main        Redis
	closers     []func() error
	lock        *locker
	keyRing     *KeyRing
	replicaID   string
	seq         *sequencer
	log         Logger
	onError     func(error)
	lockTimeout time.Duration
	lockTTL     time.Duration
	now         func() time.Time
	soft        *softState
	touches     *debouncer
	closeOnce   sync.Once
	closeErr    error
	stats       struct {
		published, publishFailures, refreshes, folded, handled, unknown, rejected, failed uint64
	}
}

var _ Keepalive = (*Client)(nil)

// NewClient checks the options and builds a client. It opens no connection until first used.
func NewClient(o Options) (*Client, error) {
	named := 0
	for _, set := range []bool{o.Redis != nil, o.Pool != nil, o.Address != "", o.Cluster != nil, len(o.ClusterNodes) > 0, o.Sentinel != nil} {
		if set {
			named++
		}
	}
	if named != 1 {
		return nil, errors.New("vmcpkeepalive: set exactly one of Options.Redis, Pool, Address, Cluster, ClusterNodes and Sentinel")
	}
	if err := checkID("Options.ReplicaID", o.ReplicaID); err != nil {
		return nil, fmt.Errorf("vmcpkeepalive: %w", err)
	}
	if o.Sentinel != nil && (len(o.Sentinel.Addresses) == 0 || o.Sentinel.MasterName == "") {
		return nil, errors.New("vmcpkeepalive: Options.Sentinel needs Addresses and MasterName")
	}
	if len(o.LockNodes) > 0 && len(o.LockRedis) > 0 {
		return nil, errors.New("vmcpkeepalive: set Options.LockNodes or Options.LockRedis, not both")
	}
	prefix := o.Prefix
	if prefix == "" {
		prefix = "vmk"
	}
	cluster := o.Cluster != nil || len(o.ClusterNodes) > 0 || (o.Redis != nil && o.RedisIsCluster)
	shards := o.Shards
	if shards == 0 {
		shards = 1
		if cluster {
			shards = DefaultClusterShards
		}
	}
	keys, err := NewKeys(prefix, shards, cluster || shards > 1)
	if err != nil {
		return nil, fmt.Errorf("vmcpkeepalive: %w", err)
	}
	connectTimeout := o.ConnectTimeout
	if connectTimeout <= 0 {
		connectTimeout = 5 * time.Second
	}
	c := &Client{
		keys:        keys,
		keyRing:     o.KeyRing,
		replicaID:   o.ReplicaID,
		seq:         newSequencer(),
		log:         o.Logger,
		onError:     o.OnError,
		lockTimeout: o.LockTimeout,
		lockTTL:     o.ReinitializeLockTTL,
		now:         time.Now,
	}
	if c.log == nil {
		c.log = silentLogger{}
	}
	if c.lockTimeout <= 0 {
		c.lockTimeout = 22 * time.Second
	}
	if c.lockTTL <= 0 {
		c.lockTTL = 30 * time.Second
	}
	switch {
	case o.Redis != nil:
		c.main = o.Redis
	case o.Pool != nil:
		c.main = RedigoPool(o.Pool)
	case o.Address != "":
		p, err := ownedPool(o.Address, connectTimeout, o.TLSConfig)
		if err != nil {
			return nil, fmt.Errorf("vmcpkeepalive: Options.Address: %w", err)
		}
		c.main, c.closers = p, append(c.closers, p.close)
	case o.Cluster != nil:
		c.main = RedigoCluster(o.Cluster)
	case len(o.ClusterNodes) > 0:
		rc, closeCluster, err := newOwnedCluster(append([]string(nil), o.ClusterNodes...), connectTimeout, o.TLSConfig)
		if err != nil {
			return nil, fmt.Errorf("vmcpkeepalive: Options.ClusterNodes: %w", err)
		}
		c.main, c.closers = rc, append(c.closers, closeCluster)
	default:
		s := newSentinelRedis(*o.Sentinel, connectTimeout, o.TLSConfig)
		c.main, c.closers = s, append(c.closers, s.close)
	}
	switch {
	case len(o.LockRedis) > 0:
		c.lock = &locker{nodes: o.LockRedis}
	case len(o.LockNodes) > 0:
		nodes := make([]Redis, len(o.LockNodes))
		for i, addr := range o.LockNodes {
			// Lock nodes fail fast: a node that is down votes against at once.
			p, err := ownedPool(addr, time.Second, o.TLSConfig)
			if err != nil {
				return nil, fmt.Errorf("vmcpkeepalive: Options.LockNodes[%d]: %w", i, err)
			}
			nodes[i] = p
			c.closers = append(c.closers, p.close)
		}
		c.lock = &locker{nodes: nodes, labels: o.LockNodes}
	default:
		c.lock = &locker{nodes: []Redis{c.main}}
	}
	c.soft = newSoftState(c, o.RefreshInterval)
	touchInterval := o.TouchInterval
	if touchInterval == 0 {
		touchInterval = 30 * time.Second
	}
	c.touches = newDebouncer(c, touchInterval)
	return c, nil
}

// Keys is the client's key layout.
func (c *Client) Keys() *Keys { return c.keys }

// Stats reads the counters.
func (c *Client) Stats() Stats {
	return Stats{
		MessagesPublished:   atomic.LoadUint64(&c.stats.published),
		PublishFailures:     atomic.LoadUint64(&c.stats.publishFailures),
		Refreshes:           atomic.LoadUint64(&c.stats.refreshes),
		TouchesFolded:       atomic.LoadUint64(&c.stats.folded),
		EventsHandled:       atomic.LoadUint64(&c.stats.handled),
		EventsOfUnknownType: atomic.LoadUint64(&c.stats.unknown),
		EventsRejected:      atomic.LoadUint64(&c.stats.rejected),
		EventsFailed:        atomic.LoadUint64(&c.stats.failed),
	}
}

// Close stops the soft-state refreshes, sends every pending trailing touch (within ctx), and
// closes the connections the client opened (not a Redis, Pool or Cluster passed in Options). It
// returns the first error: a touch that could not be sent, or a connection that did not close.
func (c *Client) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.soft.stop()
		c.closeErr = c.touches.flush(ctx)
		for _, closeFn := range c.closers {
			if err := closeFn(); err != nil && c.closeErr == nil {
				c.closeErr = err
			}
		}
	})
	return c.closeErr
}

// backgroundFailure reports an error no call returns (a refresh, a trailing touch).
func (c *Client) backgroundFailure(err error) {
	c.log.Printf("vmcpkeepalive: %v", err)
	if c.onError != nil {
		c.onError(err)
	}
}

// publish adds one lifecycle message to the ingress stream: XADD <stream> * message <json>.
func (c *Client) publish(ctx context.Context, m *message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("%s for %s: %w", m.Type, m.SessionID, err)
	}
	if len(body) > MaxMessageBytes {
		return fmt.Errorf("%s for %s: %d bytes, more than the %d a message may have", m.Type, m.SessionID, len(body), MaxMessageBytes)
	}
	stream := c.keys.SessionMessages()
	if _, err := c.main.Do(ctx, "XADD", stream, "*", "message", body); err != nil {
		atomic.AddUint64(&c.stats.publishFailures, 1)
		return &PublishError{Type: m.Type, SessionID: m.SessionID, Err: fmt.Errorf("XADD %s: %w", stream, err)}
	}
	atomic.AddUint64(&c.stats.published, 1)
	return nil
}

// PublishError: a lifecycle message did not reach Redis.
type PublishError struct {
	Type      string
	SessionID string
	Err       error
}

func (e *PublishError) Error() string {
	return fmt.Sprintf("%s for %s: %v", e.Type, e.SessionID, e.Err)
}
func (e *PublishError) Unwrap() error { return e.Err }

func (c *Client) base(typ, sessionID string, at time.Time) *message {
	return &message{Type: typ, V: 1, SessionID: sessionID, OccurredAt: occurredAt(at), Sequence: c.seq.next(sessionID, c.now())}
}

func (c *Client) seal(sessionID, backendID string, cr *Credentials) (*SealedCredentials, error) {
	if c.keyRing == nil {
		return nil, fmt.Errorf("credentials for %s/%s: the client has no Options.KeyRing to seal them with", sessionID, backendID)
	}
	s, err := c.keyRing.Seal(sessionID, backendID, *cr)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// registration is a session.registered as sent, kept for soft-state refreshes.
type registration struct {
	ttl, maxLifetime time.Duration
	backends         []backendWire
}

func (c *Client) registrationMessage(sessionID string, r *registration) *message {
	m := c.base(TypeSessionRegistered, sessionID, c.now())
	m.ReplicaID = c.replicaID
	m.SessionTTLMs = r.ttl.Milliseconds()
	m.MaxLifetimeMs = r.maxLifetime.Milliseconds()
	m.Backends = r.backends
	return m
}

// RegisterSession publishes session.registered: the session's backends (replacing any earlier
// list), its sliding TTL and optional maximum lifetime (0 = none). From then on the client
// registers the session again every refresh interval (soft state) until EndSession.
func (c *Client) RegisterSession(ctx context.Context, sessionID string, ttl, maxLifetime time.Duration, backends []Backend) error {
	if err := checkID("sessionId", sessionID); err != nil {
		return err
	}
	if ttl < minSessionTTL || ttl > maxSessionTTL {
		return fmt.Errorf("sessionTtlMs of %s: %v is outside 1s-720h", sessionID, ttl)
	}
	if maxLifetime != 0 && (maxLifetime < minMaxLifetime || maxLifetime > maxMaxLifetime) {
		return fmt.Errorf("maxLifetimeMs of %s: %v is outside 1s-8760h", sessionID, maxLifetime)
	}
	if len(backends) < 1 || len(backends) > maxBackends {
		return fmt.Errorf("backends of %s: %d, must be 1-%d", sessionID, len(backends), maxBackends)
	}
	seen := map[string]bool{}
	wire := make([]backendWire, len(backends))
	for i, b := range backends {
		if err := checkBackend(i, b); err != nil {
			return fmt.Errorf("session %s: %w", sessionID, err)
		}
		if seen[b.ID] {
			return fmt.Errorf("session %s: backendId %s is listed twice", sessionID, b.ID)
		}
		seen[b.ID] = true
		wire[i] = backendWire{BackendID: b.ID, BackendSessionID: b.BackendSessionID, ProtocolVersion: b.ProtocolVersion}
		if b.Credentials != nil {
			s, err := c.seal(sessionID, b.ID, b.Credentials)
			if err != nil {
				return err
			}
			wire[i].Credentials = s
		}
	}
	r := &registration{ttl: ttl, maxLifetime: maxLifetime, backends: wire}
	c.soft.remember(sessionID, r)
	c.touches.coveredByRegistration(sessionID)
	return c.publish(ctx, c.registrationMessage(sessionID, r))
}

// sealAll seals credentials by backend id.
func (c *Client) sealAll(sessionID string, credentials map[string]Credentials) (map[string]SealedCredentials, error) {
	if len(credentials) == 0 {
		return nil, nil
	}
	sealed := make(map[string]SealedCredentials, len(credentials))
	for backendID, cr := range credentials {
		if err := checkID("credentials backend id", backendID); err != nil {
			return nil, fmt.Errorf("session %s: %w", sessionID, err)
		}
		cr := cr
		s, err := c.seal(sessionID, backendID, &cr)
		if err != nil {
			return nil, err
		}
		sealed[backendID] = *s
	}
	return sealed, nil
}

// Touch reports activity: the session's TTL restarts, and the named backends carried real
// traffic now, so their next keepalive is skipped. credentials (optional) replaces the
// credentials of the named pairs, here and in later refreshes.
//
// Debounced per session (Options.TouchInterval): the first touch is sent at once and its error
// returned; later ones within the interval fold into one trailing touch sent at the interval's
// end (its failure goes to Options.OnError), so a busy session costs at most one message per
// interval and its last activity is never lost. Bad input is refused at once with an error.
func (c *Client) Touch(ctx context.Context, sessionID string, backendIDs []string, credentials map[string]Credentials) error {
	if err := checkID("sessionId", sessionID); err != nil {
		return err
	}
	if len(backendIDs) > maxTouchedBackends {
		return fmt.Errorf("backendIds of %s: %d, at most %d", sessionID, len(backendIDs), maxTouchedBackends)
	}
	seen := map[string]bool{}
	for i, id := range backendIDs {
		if err := checkID(fmt.Sprintf("backendIds[%d]", i), id); err != nil {
			return fmt.Errorf("session %s: %w", sessionID, err)
		}
		if seen[id] {
			return fmt.Errorf("session %s: backendIds lists %s twice", sessionID, id)
		}
		seen[id] = true
	}
	sealed, err := c.sealAll(sessionID, credentials)
	if err != nil {
		return err
	}
	for backendID, s := range sealed {
		c.soft.updateCredentials(sessionID, backendID, s)
	}
	return c.touches.touch(ctx, sessionID, backendIDs, sealed)
}

// sendTouch publishes one session.touched dated `at`.
func (c *Client) sendTouch(ctx context.Context, sessionID string, at time.Time, backendIDs []string, sealed map[string]SealedCredentials) error {
	m := c.base(TypeSessionTouched, sessionID, at)
	m.BackendIDs = backendIDs
	if len(sealed) > 0 {
		raw, err := json.Marshal(sealed)
		if err != nil {
			return err
		}
		m.Credentials = raw
	}
	return c.publish(ctx, m)
}

// EndSession publishes session.ended (terminal: keepalives stop, state is deleted) and forgets
// the session: no refresh and no pending touch is sent for it afterwards. reason is optional (at
// most 200 characters).
func (c *Client) EndSession(ctx context.Context, sessionID, reason string) error {
	if err := checkID("sessionId", sessionID); err != nil {
		return err
	}
	if len([]rune(reason)) > maxReasonChars {
		return fmt.Errorf("reason of %s: more than %d characters", sessionID, maxReasonChars)
	}
	c.soft.forget(sessionID)
	c.touches.drop(sessionID)
	m := c.base(TypeSessionEnded, sessionID, c.now())
	if reason != "" {
		m.Reason = &reason
	}
	err := c.publish(ctx, m)
	if err == nil {
		c.seq.forget(sessionID)
	}
	return err
}

// UpdateCredentials publishes session.credentials_updated: new sealed credentials for one pair
// (a refreshed token), applied without re-registering the session; later refreshes carry them.
func (c *Client) UpdateCredentials(ctx context.Context, sessionID, backendID string, credentials Credentials) error {
	if err := checkID("sessionId", sessionID); err != nil {
		return err
	}
	if err := checkID("backendId", backendID); err != nil {
		return err
	}
	s, err := c.seal(sessionID, backendID, &credentials)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	c.soft.updateCredentials(sessionID, backendID, *s)
	m := c.base(TypeSessionCredentialsUpdated, sessionID, c.now())
	m.BackendID = backendID
	m.Credentials = raw
	return c.publish(ctx, m)
}

// backendReinitialized publishes session.backend_reinitialized (the scheduler restores the
// pair's job scheduler from the state the re-initialize script stored).
func (c *Client) backendReinitialized(ctx context.Context, sessionID, backendID string) error {
	m := c.base(TypeSessionBackendReinitialized, sessionID, c.now())
	m.BackendID = backendID
	return c.publish(ctx, m)
}
