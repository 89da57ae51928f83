package vmcpkeepalive

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/FZambia/sentinel"
	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
)

// Redis is all the client needs of a Redis library: one command, run on the node that serves its
// key, honouring ctx (when ctx is done, Do returns ctx.Err() without waiting for the reply).
//
// A nil reply is (nil, nil); a server error is a non-nil error whose text is the server's ("NOSCRIPT
// …", "BUSYGROUP …"). Replies may come in redigo's shapes ([]byte, int64, []interface{}) or in
// go-redis's (string, int64, []interface{}, and RESP3 maps): the client reads both. The adapters
// shipped here are for redigo (RedigoPool, RedigoCluster, and the Sentinel pool behind
// Options.Sentinel); clients/go/README.md shows the adapter for go-redis.
type Redis interface {
	Do(ctx context.Context, cmd string, args ...interface{}) (interface{}, error)
}

// errNilReply: a reply that had to be a value was nil.
var errNilReply = errors.New("nil reply")

// withContext runs f and returns its result, or ctx.Err() as soon as ctx is done. An abandoned f
// finishes on its own (its connection's timeouts bound it) and its result is dropped.
func withContext(ctx context.Context, f func() (interface{}, error)) (interface{}, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ctx.Done() == nil {
		return f()
	}
	type result struct {
		v   interface{}
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// doOn runs one command on a redigo connection, with ctx's deadline as its read timeout.
func doOn(ctx context.Context, conn redis.Conn, cmd string, args ...interface{}) (interface{}, error) {
	if deadline, ok := ctx.Deadline(); ok {
		if cwt, ok := conn.(redis.ConnWithTimeout); ok {
			left := time.Until(deadline)
			if left <= 0 {
				return nil, context.DeadlineExceeded
			}
			return cwt.DoWithTimeout(left, cmd, args...)
		}
	}
	return conn.Do(cmd, args...)
}

// RedigoPool is the Redis of a redigo pool on one server (the caller's to close).
func RedigoPool(pool *redis.Pool) Redis { return &redigoPool{pool: pool} }

type redigoPool struct {
	pool  *redis.Pool
	close func() error
}

func (p *redigoPool) Do(ctx context.Context, cmd string, args ...interface{}) (interface{}, error) {
	return withContext(ctx, func() (interface{}, error) {
		conn, err := p.pool.GetContext(ctx)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return doOn(ctx, conn, cmd, args...)
	})
}

// RedigoCluster is the Redis of a redisc cluster (the caller's to close). Each command runs on a
// connection bound to its key's slot; MOVED and ASK are followed (redisc's retry connection), and
// a node that does not answer makes the client refresh the slot map, so a failover heals once the
// cluster has promoted a replica.
func RedigoCluster(cluster *redisc.Cluster) Redis { return &redigoCluster{cluster: cluster} }

type redigoCluster struct {
	cluster    *redisc.Cluster
	refreshing int32
}

// clusterAttempts bounds the redirections one command follows.
const clusterAttempts = 5

func (c *redigoCluster) Do(ctx context.Context, cmd string, args ...interface{}) (interface{}, error) {
	return withContext(ctx, func() (interface{}, error) {
		v, err := c.do(ctx, cmd, args...)
		if err != nil && redisc.ParseRedir(err) == nil && !isServerError(err) {
			// Connection refused or broken: the node may be gone; learn the new slot map.
			c.refresh()
		}
		return v, err
	})
}

func (c *redigoCluster) do(ctx context.Context, cmd string, args ...interface{}) (interface{}, error) {
	conn := c.cluster.Get()
	defer conn.Close()
	key := commandKey(cmd, args)
	if key != "" {
		if err := redisc.BindConn(conn, key); err != nil {
			return nil, err
		}
	}
	// First on the bound connection, with ctx's deadline as read timeout (blocking reads).
	v, err := doOn(ctx, conn, cmd, args...)
	if redisc.ParseRedir(err) == nil && !redisc.IsTryAgain(err) {
		return v, err
	}
	// Redirected: a fresh connection through redisc's retry connection follows MOVED and ASK (the
	// slot map was updated by the MOVED reply).
	retry := c.cluster.Get()
	defer retry.Close()
	if key != "" {
		if err := redisc.BindConn(retry, key); err != nil {
			return nil, err
		}
	}
	rc, err := redisc.RetryConn(retry, clusterAttempts, 100*time.Millisecond)
	if err != nil {
		return nil, err
	}
	return rc.Do(cmd, args...)
}

// refresh reloads the slot map in the background, one reload at a time.
func (c *redigoCluster) refresh() {
	if !atomic.CompareAndSwapInt32(&c.refreshing, 0, 1) {
		return
	}
	go func() {
		defer atomic.StoreInt32(&c.refreshing, 0)
		_ = c.cluster.Refresh()
		time.Sleep(100 * time.Millisecond)
	}()
}

// isServerError: the server answered with an error (as opposed to a connection problem).
func isServerError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// commandKey is the key a command's slot is taken from (the commands this client sends).
func commandKey(cmd string, args []interface{}) string {
	at := 0
	switch strings.ToUpper(cmd) {
	case "EVAL", "EVALSHA":
		at = 2
	case "XGROUP":
		at = 1
	case "XREADGROUP", "XREAD":
		for i, a := range args {
			if s, _ := replyString(a); strings.EqualFold(s, "STREAMS") {
				at = i + 1
				break
			}
		}
	}
	if at >= len(args) {
		return ""
	}
	key, _ := replyString(args[at])
	return key
}

// SentinelOptions name a Redis managed by Sentinel: the Sentinels' addresses ("host:port") and
// the master's name (the deployment's redis.sentinels and redis.name).
type SentinelOptions struct {
	Addresses  []string
	MasterName string
	// Username and Password of the data nodes (the master); empty when they need none.
	Username string
	Password string
	// SentinelUsername and SentinelPassword of the Sentinels themselves; empty when they need none.
	SentinelUsername string
	SentinelPassword string
}

// sentinelRedis asks the Sentinels for the master on every new connection and checks the role of
// a connection idle for more than a second, so that after a failover it talks to the new master.
type sentinelRedis struct {
	redigoPool
	sentinel *sentinel.Sentinel
}

func newSentinelRedis(o SentinelOptions, connectTimeout time.Duration, tlsConfig *tls.Config) *sentinelRedis {
	s := &sentinel.Sentinel{
		Addrs:      o.Addresses,
		MasterName: o.MasterName,
		Dial: func(addr string) (redis.Conn, error) {
			opts := append(dialOptions(connectTimeout, o.SentinelUsername, o.SentinelPassword, tlsConfig), redis.DialReadTimeout(connectTimeout))
			return redis.Dial("tcp", addr, opts...)
		},
	}
	pool := &redis.Pool{
		MaxIdle:     8,
		IdleTimeout: 5 * time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			addr, err := s.MasterAddr()
			if err != nil {
				return nil, fmt.Errorf("sentinel master %s: %w", o.MasterName, err)
			}
			conn, err := redis.DialContext(ctx, "tcp", addr, dialOptions(connectTimeout, o.Username, o.Password, tlsConfig)...)
			if err != nil {
				return nil, err
			}
			if !sentinel.TestRole(conn, "master") {
				conn.Close()
				return nil, fmt.Errorf("sentinel master %s: %s is not a master (failover under way)", o.MasterName, addr)
			}
			return conn, nil
		},
		TestOnBorrow: func(c redis.Conn, t time.Time) error {
			if time.Since(t) < time.Second {
				return nil
			}
			if !sentinel.TestRole(c, "master") {
				return errors.New("no longer the master")
			}
			return nil
		},
	}
	r := &sentinelRedis{sentinel: s}
	r.pool = pool
	r.close = func() error {
		err := pool.Close()
		if serr := s.Close(); err == nil {
			err = serr
		}
		return err
	}
	return r
}

// defaultReadTimeout bounds a reply on connections the client opens (blocking reads set their own).
const defaultReadTimeout = 10 * time.Second

func dialOptions(connectTimeout time.Duration, username, password string, tlsConfig *tls.Config) []redis.DialOption {
	opts := []redis.DialOption{redis.DialConnectTimeout(connectTimeout), redis.DialReadTimeout(defaultReadTimeout), redis.DialWriteTimeout(connectTimeout)}
	if tlsConfig != nil {
		opts = append(opts, redis.DialUseTLS(true), redis.DialTLSConfig(tlsConfig))
	}
	if username != "" {
		opts = append(opts, redis.DialUsername(username))
	}
	if password != "" {
		opts = append(opts, redis.DialPassword(password))
	}
	return opts
}

// target is "host:port" or a redis:// / rediss:// URL, as dial arguments.
type target struct {
	address string
	options []redis.DialOption
}

func parseTarget(address string, connectTimeout time.Duration, tlsConfig *tls.Config) (target, error) {
	if !strings.Contains(address, "://") {
		return target{address: address, options: dialOptions(connectTimeout, "", "", tlsConfig)}, nil
	}
	u, err := url.Parse(address)
	if err != nil {
		return target{}, fmt.Errorf("redis address: %w", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return target{}, fmt.Errorf("redis address %s: scheme must be redis or rediss", u.Redacted())
	}
	host := u.Host
	if u.Port() == "" {
		host += ":6379"
	}
	username, password := "", ""
	if u.User != nil {
		username = u.User.Username()
		password, _ = u.User.Password()
		if _, set := u.User.Password(); !set {
			// redis://secret@host: the user part alone is the password.
			username, password = "", u.User.Username()
		}
	}
	opts := dialOptions(connectTimeout, username, password, tlsConfig)
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil {
			return target{}, fmt.Errorf("redis address %s: database %q is not a number", u.Redacted(), db)
		}
		opts = append(opts, redis.DialDatabase(n))
	}
	if u.Scheme == "rediss" && tlsConfig == nil {
		opts = append(opts, redis.DialUseTLS(true))
	}
	return target{address: host, options: opts}, nil
}

// newPool is a pool on one server; the dial honours the ctx of the command that needs it.
func newPool(t target) *redis.Pool {
	return &redis.Pool{
		MaxIdle:     8,
		IdleTimeout: 5 * time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", t.address, t.options...)
		},
		TestOnBorrow: func(c redis.Conn, at time.Time) error {
			if time.Since(at) < time.Minute {
				return nil
			}
			_, err := c.Do("PING")
			return err
		},
	}
}

// ownedPool is a pool on one server that the client opened and closes.
func ownedPool(address string, connectTimeout time.Duration, tlsConfig *tls.Config) (*redigoPool, error) {
	t, err := parseTarget(address, connectTimeout, tlsConfig)
	if err != nil {
		return nil, err
	}
	pool := newPool(t)
	return &redigoPool{pool: pool, close: pool.Close}, nil
}

func newOwnedCluster(nodes []string, connectTimeout time.Duration, tlsConfig *tls.Config) (*redigoCluster, func() error, error) {
	var opts []redis.DialOption
	for i, n := range nodes {
		t, err := parseTarget(n, connectTimeout, tlsConfig)
		if err != nil {
			return nil, nil, err
		}
		nodes[i] = t.address
		opts = t.options
	}
	cluster := &redisc.Cluster{
		StartupNodes: nodes,
		DialOptions:  opts,
		CreatePool: func(address string, options ...redis.DialOption) (*redis.Pool, error) {
			return newPool(target{address: address, options: options}), nil
		},
	}
	return &redigoCluster{cluster: cluster}, cluster.Close, nil
}

// Reply shapes: redigo answers bulk strings as []byte, go-redis as string; both answer integers
// as int64 and arrays as []interface{}; go-redis over RESP3 answers some arrays as maps.

func replyString(v interface{}) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case nil:
		return "", errNilReply
	}
	return "", fmt.Errorf("unexpected reply %T, want a string", v)
}

func replyInt64(v interface{}) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case string, []byte:
		s, _ := replyString(x)
		return strconv.ParseInt(s, 10, 64)
	case nil:
		return 0, errNilReply
	}
	return 0, fmt.Errorf("unexpected reply %T, want an integer", v)
}

func replyValues(v interface{}) ([]interface{}, error) {
	switch x := v.(type) {
	case []interface{}:
		return x, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected reply %T, want an array", v)
}

// replyStringMap reads a flat [field, value, …] array or a RESP3 map.
func replyStringMap(v interface{}) (map[string]string, error) {
	out := map[string]string{}
	put := func(k, val interface{}) error {
		ks, err := replyString(k)
		if err != nil {
			return err
		}
		vs, err := replyString(val)
		if err != nil {
			return err
		}
		out[ks] = vs
		return nil
	}
	switch x := v.(type) {
	case []interface{}:
		if len(x)%2 != 0 {
			return nil, errors.New("field-value array of odd length")
		}
		for i := 0; i < len(x); i += 2 {
			if err := put(x[i], x[i+1]); err != nil {
				return nil, err
			}
		}
	case map[interface{}]interface{}:
		for k, val := range x {
			if err := put(k, val); err != nil {
				return nil, err
			}
		}
	case map[string]interface{}:
		for k, val := range x {
			if err := put(k, val); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("unexpected reply %T, want field-value pairs", v)
	}
	return out, nil
}

// scripts holds each script's SHA; evalScript runs by SHA and loads by source when the server
// does not have it yet (NOSCRIPT).
type luaScript struct {
	source string
	once   sync.Once
	sha    string
}

func (s *luaScript) hash() string {
	s.once.Do(func() { s.sha = sha1Hex(s.source) })
	return s.sha
}

func evalScript(ctx context.Context, r Redis, script *luaScript, key string, args ...interface{}) (interface{}, error) {
	all := append([]interface{}{script.hash(), 1, key}, args...)
	reply, err := r.Do(ctx, "EVALSHA", all...)
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		all[0] = script.source
		reply, err = r.Do(ctx, "EVAL", all...)
	}
	return reply, err
}
