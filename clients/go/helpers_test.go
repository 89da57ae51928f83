package vmcpkeepalive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// repoRoot is the workspace root (this module is clients/go in it; the test's working directory
// may be a symbolic link into it, so the link is resolved first).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.EvalSymlinks(wd)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(abs))
}

// interop runs testdata/interop.mjs with the TypeScript implementation and decodes its answer.
func interop(t *testing.T, request interface{}, answer interface{}) {
	t.Helper()
	body, err := json.Marshal(request)
	if err != nil {
		t.Fatal(err)
	}
	node := os.Getenv("VMK_NODE")
	if node == "" {
		node = "node"
	}
	cmd := exec.Command(node, filepath.Join(repoRoot(t), "clients/go/testdata/interop.mjs"))
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("interop.mjs (needs node and a built workspace: pnpm run build): %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(out, answer); err != nil {
		t.Fatalf("interop.mjs answered %q: %v", out, err)
	}
}

// redisServer is a private redis-server on a unix socket, stopped at the end of the test.
type redisServer struct {
	socket string
	cmd    *exec.Cmd
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "vmk-go-redis-")
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "redis.sock")
	cmd := exec.Command("redis-server", "--port", "0", "--unixsocket", socket, "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("redis-server (apt-get install redis-server): %v", err)
	}
	s := &redisServer{socket: socket, cmd: cmd}
	t.Cleanup(func() {
		s.stop()
		os.RemoveAll(dir)
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := redis.Dial("unix", socket); err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err == nil {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer within 10 s", socket)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *redisServer) stop() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

func (s *redisServer) pool() *redis.Pool {
	return &redis.Pool{
		MaxIdle: 4,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.Dial("unix", s.socket, redis.DialConnectTimeout(time.Second))
		},
	}
}

// redis is the server as the client's Redis: through redigo, or through the go-redis-shaped
// adapter when VMK_GO_REPLY_SHAPE=go-redis (the suite runs both ways).
func (s *redisServer) redis(t *testing.T) Redis {
	pool := s.pool()
	t.Cleanup(func() { pool.Close() })
	return shaped(RedigoPool(pool))
}

// shaped wraps r in the go-redis-shaped adapter when the suite runs that way.
func shaped(r Redis) Redis {
	if os.Getenv("VMK_GO_REPLY_SHAPE") == "go-redis" {
		return goRedisShaped{r}
	}
	return r
}

// goRedisShaped converts every reply into the shapes go-redis v9 answers with (bulk strings as
// string, arrays as []interface{} of those) and every error into a plain error carrying the
// server's text, as a go-redis adapter would hand them over.
type goRedisShaped struct{ r Redis }

func (g goRedisShaped) Do(ctx context.Context, cmd string, args ...interface{}) (interface{}, error) {
	v, err := g.r.Do(ctx, cmd, args...)
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, errors.New(err.Error())
	}
	return toGoRedisShape(v), nil
}

func toGoRedisShape(v interface{}) interface{} {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case []interface{}:
		out := make([]interface{}, len(x))
		for i, e := range x {
			out[i] = toGoRedisShape(e)
		}
		return out
	}
	return v
}

func (s *redisServer) do(t *testing.T, cmd string, args ...interface{}) interface{} {
	t.Helper()
	c, err := redis.Dial("unix", s.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reply, err := c.Do(cmd, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", cmd, args, err)
	}
	return reply
}

// newTestClient is a client on one private redis-server.
func newTestClient(t *testing.T, s *redisServer, o Options) *Client {
	t.Helper()
	o.Redis = s.redis(t)
	if o.ReplicaID == "" {
		o.ReplicaID = "go-1"
	}
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// streamMessages reads every lifecycle message of the ingress stream.
func streamMessages(t *testing.T, s *redisServer, stream string) []map[string]interface{} {
	t.Helper()
	entries, err := parseEntries(s.do(t, "XRANGE", stream, "-", "+"))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]interface{}, len(entries))
	for i, e := range entries {
		d := json.NewDecoder(strings.NewReader(e.fields["message"]))
		d.UseNumber()
		if err := d.Decode(&out[i]); err != nil {
			t.Fatalf("entry %s: %v", e.id, err)
		}
	}
	return out
}

func mustJSON(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return string(b)
}
