package vmcpkeepalive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
)

// Logger receives the client's log lines (log.Default() unless set).
type Logger interface {
	Printf(format string, args ...interface{})
}

// Options configure a Client. Exactly one of Pool, Address and Cluster names the main Redis.
type Options struct {
	// Pool is a redigo pool on a standalone Redis (the caller's to close).
	Pool *redis.Pool
	// Address of a standalone Redis: "host:port" or a redis:// / rediss:// URL.
	Address string
	// Cluster is a redisc cluster (the caller's to close). Keys are then hash-tagged.
	Cluster *redisc.Cluster
	// Prefix is the deployment's redis.prefix. Default "vmk".
	Prefix string
	// ReplicaID names this vMCP replica in registrations (required).
	ReplicaID string
	// Shards is the deployment's keepalive.shards. Default 16 on a Cluster, else 1.
	Shards int
	// LockNodes are the deployment's lock.redis_urls ("host:port" or URLs): independent Redis
	// servers over which the pair lock is a Redlock quorum. Empty: the lock lives on the main Redis.
	LockNodes []string
	// KeyRing seals session credentials; needed only when credentials are sent.
	KeyRing *KeyRing
	// LockTimeout is how long ReinitializeBackend waits for a busy pair lock (just above the
	// workers' lock TTL). Default 22 s.
	LockTimeout time.Duration
	// ReinitializeLockTTL is the pair lock's TTL while the re-initialize callback runs. Default 30 s.
	ReinitializeLockTTL time.Duration
	// Logger; default log.Default().
	Logger Logger
}

// Stats are the client's counters (read with Client.Stats).
type Stats struct {
	MessagesPublished uint64
	PublishFailures   uint64
	EventsHandled     uint64
	// EventsRejected counts entries of the event stream that are not a valid event (acknowledged and skipped).
	EventsRejected uint64
	// EventsFailed counts handler errors (the entry stays pending and is delivered again).
	EventsFailed uint64
}

// Client is a vMCP replica's side of the contract: lifecycle messages through the ingress
// stream, events from the event stream, and the pair lock with the re-initialize script.
type Client struct {
	keys        *Keys
	main        connSource
	ownsMain    bool
	lock        *locker
	keyRing     *KeyRing
	replicaID   string
	seq         *sequencer
	log         Logger
	lockTimeout time.Duration
	lockTTL     time.Duration
	now         func() time.Time
	stats       struct{ published, publishFailures, handled, rejected, failed uint64 }
}

// connSource hands out a connection able to run commands on `key` (bound to its slot on a Cluster).
type connSource interface {
	get(ctx context.Context, key string) (redis.Conn, error)
	close() error
}

type poolSource struct {
	pool *redis.Pool
	owns bool
}

func (p poolSource) get(ctx context.Context, _ string) (redis.Conn, error) {
	return p.pool.GetContext(ctx)
}

func (p poolSource) close() error {
	if p.owns {
		return p.pool.Close()
	}
	return nil
}

type clusterSource struct{ cluster *redisc.Cluster }

func (c clusterSource) get(_ context.Context, key string) (redis.Conn, error) {
	conn := c.cluster.Get()
	if err := redisc.BindConn(conn, key); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func (c clusterSource) close() error { return nil }

// dial opens one connection to "host:port" or a redis:// URL.
func dial(address string, timeout time.Duration) (redis.Conn, error) {
	opts := []redis.DialOption{redis.DialConnectTimeout(timeout), redis.DialReadTimeout(0), redis.DialWriteTimeout(timeout)}
	if strings.Contains(address, "://") {
		return redis.DialURL(address, opts...)
	}
	return redis.Dial("tcp", address, opts...)
}

// newPool is a pool for an address. Lock nodes fail fast: a node that is down votes against at once.
func newPool(address string, connectTimeout time.Duration) *redis.Pool {
	return &redis.Pool{
		MaxIdle:     8,
		IdleTimeout: 5 * time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) { return dial(address, connectTimeout) },
		TestOnBorrow: func(c redis.Conn, t time.Time) error {
			if time.Since(t) < time.Minute {
				return nil
			}
			_, err := c.Do("PING")
			return err
		},
	}
}

// NewClient checks the options and builds a client. It opens no connection until first used.
func NewClient(o Options) (*Client, error) {
	named := 0
	for _, set := range []bool{o.Pool != nil, o.Address != "", o.Cluster != nil} {
		if set {
			named++
		}
	}
	if named != 1 {
		return nil, errors.New("vmcpkeepalive: set exactly one of Options.Pool, Options.Address and Options.Cluster")
	}
	if err := checkID("Options.ReplicaID", o.ReplicaID); err != nil {
		return nil, fmt.Errorf("vmcpkeepalive: %w", err)
	}
	prefix := o.Prefix
	if prefix == "" {
		prefix = "vmk"
	}
	cluster := o.Cluster != nil
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
	c := &Client{
		keys:        keys,
		keyRing:     o.KeyRing,
		replicaID:   o.ReplicaID,
		seq:         newSequencer(),
		log:         o.Logger,
		lockTimeout: o.LockTimeout,
		lockTTL:     o.ReinitializeLockTTL,
		now:         time.Now,
	}
	if c.log == nil {
		c.log = log.Default()
	}
	if c.lockTimeout <= 0 {
		c.lockTimeout = 22 * time.Second
	}
	if c.lockTTL <= 0 {
		c.lockTTL = 30 * time.Second
	}
	switch {
	case o.Pool != nil:
		c.main = poolSource{pool: o.Pool}
	case o.Address != "":
		c.main = poolSource{pool: newPool(o.Address, 5*time.Second), owns: true}
	default:
		c.main = clusterSource{cluster: o.Cluster}
	}
	if len(o.LockNodes) == 0 {
		c.lock = &locker{nodes: []connSource{c.main}}
	} else {
		nodes := make([]connSource, len(o.LockNodes))
		for i, addr := range o.LockNodes {
			nodes[i] = poolSource{pool: newPool(addr, time.Second), owns: true}
		}
		c.lock = &locker{nodes: nodes, labels: o.LockNodes}
	}
	return c, nil
}

// Keys is the client's key layout.
func (c *Client) Keys() *Keys { return c.keys }

// Stats reads the counters.
func (c *Client) Stats() Stats {
	return Stats{
		MessagesPublished: atomic.LoadUint64(&c.stats.published),
		PublishFailures:   atomic.LoadUint64(&c.stats.publishFailures),
		EventsHandled:     atomic.LoadUint64(&c.stats.handled),
		EventsRejected:    atomic.LoadUint64(&c.stats.rejected),
		EventsFailed:      atomic.LoadUint64(&c.stats.failed),
	}
}

// Close closes the connections the client opened (not a Pool or Cluster passed in Options).
func (c *Client) Close() error {
	var first error
	for _, n := range c.lock.nodes {
		if n == c.main {
			continue
		}
		if err := n.close(); err != nil && first == nil {
			first = err
		}
	}
	if err := c.main.close(); err != nil && first == nil {
		first = err
	}
	return first
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
	conn, err := c.main.get(ctx, stream)
	if err == nil {
		_, err = do(ctx, conn, 0, "XADD", stream, "*", "message", body)
		conn.Close()
	}
	if err != nil {
		atomic.AddUint64(&c.stats.publishFailures, 1)
		return fmt.Errorf("%s for %s: XADD %s: %w", m.Type, m.SessionID, stream, err)
	}
	atomic.AddUint64(&c.stats.published, 1)
	return nil
}

func (c *Client) base(typ, sessionID string) *message {
	now := c.now()
	return &message{Type: typ, V: 1, SessionID: sessionID, OccurredAt: occurredAt(now), Sequence: c.seq.next(sessionID, now)}
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

// RegisterSession publishes session.registered: the session's backends (replacing any earlier
// list), its sliding TTL and optional maximum lifetime (0 = none). Call it again with the same
// list to refresh soft state; the scheduler applies only the newest registration.
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
	m := c.base(TypeSessionRegistered, sessionID)
	m.ReplicaID = c.replicaID
	m.SessionTTLMs = ttl.Milliseconds()
	m.MaxLifetimeMs = maxLifetime.Milliseconds()
	m.Backends = wire
	return c.publish(ctx, m)
}

// Touch publishes session.touched: the session is active (its TTL restarts), and the named
// backends carried real traffic now, so their next keepalive is skipped. credentials (optional)
// replaces the sealed credentials of the named pairs.
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
	m := c.base(TypeSessionTouched, sessionID)
	m.BackendIDs = backendIDs
	if len(credentials) > 0 {
		sealed := map[string]SealedCredentials{}
		for backendID, cr := range credentials {
			if err := checkID("credentials backend id", backendID); err != nil {
				return fmt.Errorf("session %s: %w", sessionID, err)
			}
			cr := cr
			s, err := c.seal(sessionID, backendID, &cr)
			if err != nil {
				return err
			}
			sealed[backendID] = *s
		}
		raw, err := json.Marshal(sealed)
		if err != nil {
			return err
		}
		m.Credentials = raw
	}
	return c.publish(ctx, m)
}

// EndSession publishes session.ended (terminal: keepalives stop, state is deleted). reason is
// optional (at most 200 characters).
func (c *Client) EndSession(ctx context.Context, sessionID, reason string) error {
	if err := checkID("sessionId", sessionID); err != nil {
		return err
	}
	if len([]rune(reason)) > maxReasonChars {
		return fmt.Errorf("reason of %s: more than %d characters", sessionID, maxReasonChars)
	}
	m := c.base(TypeSessionEnded, sessionID)
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
// (a refreshed token), applied without re-registering the session.
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
	m := c.base(TypeSessionCredentialsUpdated, sessionID)
	m.BackendID = backendID
	m.Credentials = raw
	return c.publish(ctx, m)
}

// backendReinitialized publishes session.backend_reinitialized (the scheduler restores the
// pair's job scheduler from the state the re-initialize script stored).
func (c *Client) backendReinitialized(ctx context.Context, sessionID, backendID string) error {
	m := c.base(TypeSessionBackendReinitialized, sessionID)
	m.BackendID = backendID
	return c.publish(ctx, m)
}

// do runs one command with a read timeout: `timeout` when set, capped by ctx's deadline (the
// connection's own timeouts when neither is set, or when it cannot take a timeout per call).
func do(ctx context.Context, conn redis.Conn, timeout time.Duration, cmd string, args ...interface{}) (interface{}, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		if left := time.Until(deadline); timeout == 0 || left < timeout {
			timeout = left
		}
	}
	if cwt, ok := conn.(redis.ConnWithTimeout); ok && timeout > 0 {
		return cwt.DoWithTimeout(timeout, cmd, args...)
	}
	return conn.Do(cmd, args...)
}

// evalScript runs a one-key script by SHA (EVALSHA), and by source (EVAL) when the server does
// not have it yet (NOSCRIPT), which also loads it for the next call.
func evalScript(ctx context.Context, conn redis.Conn, script *redis.Script, key string, args ...interface{}) (interface{}, error) {
	all := append([]interface{}{script.Hash(), 1, key}, args...)
	reply, err := do(ctx, conn, 0, "EVALSHA", all...)
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		all[0] = scriptSources[script]
		reply, err = do(ctx, conn, 0, "EVAL", all...)
	}
	return reply, err
}
