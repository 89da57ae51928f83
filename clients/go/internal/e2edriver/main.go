// Command e2edriver is a stand-in vMCP written with the Go client, driven by the end-to-end tests
// (test/go-client*.test.ts) over stdin and stdout, against real schedulers, workers and an MCP
// backend. It opens one backend session per vMCP session with MCP initialize, registers them
// through the ingress stream (many at once, from several goroutines), re-initializes a backend
// when the event stream reports its session expired, and ends or touches sessions when told to.
//
// Environment:
//
//	Redis, exactly one of:
//	  VMK_E2E_REDIS          redis:// URL of a standalone Redis (Options.Address)
//	  VMK_E2E_CLUSTER_NODES  comma-separated seed nodes of a Redis Cluster (Options.ClusterNodes)
//	  VMK_E2E_SENTINELS      comma-separated host:port of the Sentinels, with
//	  VMK_E2E_MASTER_NAME    the master's name (Options.Sentinel)
//	VMK_E2E_PREFIX           the deployment's redis.prefix
//	VMK_E2E_BACKEND          MCP endpoint URL (every session has one backend, "b1")
//	Sessions, one of:
//	  VMK_E2E_SESSIONS       comma-separated vMCP session ids
//	  VMK_E2E_SESSION_COUNT  a number n: ids <VMK_E2E_SESSION_PREFIX>0 … <prefix>n-1 (prefix "s")
//	VMK_E2E_CONCURRENCY      goroutines that open and register sessions (default 16)
//	VMK_E2E_REGISTER_RATE    most registrations per second (default: no limit); spreads the
//	                         registrations over time, so that a failover can fall among them
//	VMK_E2E_REFRESH_INTERVAL Options.RefreshInterval as a Go duration (default: the client's)
//	VMK_E2E_CREDENTIALS_KEY  id:base64 key; the backend then authenticates every user, and each
//	                         session registers its token sealed as the pair's credentials
//	VMK_E2E_TLS_CA           PEM file of the CA: TLS to every Redis connection (Options.TLSConfig),
//	VMK_E2E_TLS_CERT, _KEY   with this client certificate (optional),
//	VMK_E2E_TLS_SERVERNAME   and this server name (optional)
//	VMK_E2E_SENTINEL_PASSWORD the Sentinels' own password
//	VMK_E2E_MASTER_PASSWORD  the data nodes' password (Sentinel mode)
//
// stdin lines: "end <sessionId>…", "touch <sessionId>", "stats", "quit".
// stdout: one JSON object per line, each with an "event" field: "initialized" (backend sessions
// open), "progress" (every tenth of the registrations), "registered" (sessions: session id →
// backend session id; failed: registrations whose message did not reach Redis — soft state
// sends them again —, lastFailureAt: when the last of them failed, ms since the epoch), "reinitialized", "ended", "touched", "stats", "stopped".
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vmk "github.com/vmcp-keepalive/clients/go"
)

var out = json.NewEncoder(os.Stdout)
var outMu sync.Mutex

func say(v map[string]interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	out.Encode(v)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "e2edriver: "+format+"\n", args...)
	os.Exit(1)
}

// httpClient keeps a connection per registering goroutine (the default keeps two per host).
var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

// initialize opens a backend session the way a vMCP does: MCP initialize, then the initialized
// notification, over Streamable HTTP. It answers the session id and the negotiated revision.
// authorization: the user's token ("" when the backend authenticates no one); a backend that
// authenticates every user binds the new session to it.
func initialize(ctx context.Context, url, authorization string) (vmk.ReinitializedBackend, error) {
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"vmk-go-e2e","version":"1.0.0"}}}`
	resp, err := post(ctx, url, body, "", "", authorization)
	if err != nil {
		return vmk.ReinitializedBackend{}, err
	}
	sid := resp.Header.Get("Mcp-Session-Id")
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return vmk.ReinitializedBackend{}, err
	}
	if resp.StatusCode != 200 || sid == "" {
		return vmk.ReinitializedBackend{}, fmt.Errorf("initialize: HTTP %d, session id %q: %s", resp.StatusCode, sid, raw)
	}
	// The answer is JSON or one SSE event whose data line holds it.
	payload := raw
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "data:") {
				payload = []byte(strings.TrimSpace(strings.TrimPrefix(line, "data:")))
				break
			}
		}
	}
	var answer struct {
		Result struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"result"`
	}
	if err := json.Unmarshal(payload, &answer); err != nil || answer.Result.ProtocolVersion == "" {
		return vmk.ReinitializedBackend{}, fmt.Errorf("initialize: no protocolVersion in %s", raw)
	}
	note, err := post(ctx, url, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, sid, answer.Result.ProtocolVersion, authorization)
	if err != nil {
		return vmk.ReinitializedBackend{}, err
	}
	io.Copy(io.Discard, note.Body)
	note.Body.Close()
	if note.StatusCode != 202 && note.StatusCode != 200 {
		return vmk.ReinitializedBackend{}, fmt.Errorf("notifications/initialized: HTTP %d", note.StatusCode)
	}
	return vmk.ReinitializedBackend{BackendSessionID: sid, ProtocolVersion: answer.Result.ProtocolVersion}, nil
}

func post(ctx context.Context, url, body, sid, version, authorization string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("MCP-Protocol-Version", version)
	}
	return httpClient.Do(req)
}

// settings are the driver's environment, read once.
type settings struct {
	options     vmk.Options
	backend     string
	sessions    []string
	concurrency int
	// ratePerSecond: most registrations per second; 0 = no limit.
	ratePerSecond float64
}

func readSettings() settings {
	s := settings{backend: os.Getenv("VMK_E2E_BACKEND"), concurrency: 16}
	s.options = vmk.Options{Prefix: os.Getenv("VMK_E2E_PREFIX"), ReplicaID: "go-e2e", LockTimeout: 3 * time.Second}
	list := func(name string) []string {
		var items []string
		for _, item := range strings.Split(os.Getenv(name), ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		return items
	}
	modes := 0
	if url := os.Getenv("VMK_E2E_REDIS"); url != "" {
		s.options.Address = url
		modes++
	}
	if nodes := list("VMK_E2E_CLUSTER_NODES"); len(nodes) > 0 {
		s.options.ClusterNodes = nodes
		modes++
	}
	if sentinels := list("VMK_E2E_SENTINELS"); len(sentinels) > 0 {
		name := os.Getenv("VMK_E2E_MASTER_NAME")
		if name == "" {
			fail("VMK_E2E_SENTINELS needs VMK_E2E_MASTER_NAME")
		}
		s.options.Sentinel = &vmk.SentinelOptions{Addresses: sentinels, MasterName: name, Password: os.Getenv("VMK_E2E_MASTER_PASSWORD"), SentinelPassword: os.Getenv("VMK_E2E_SENTINEL_PASSWORD")}
		modes++
	}
	if ca := os.Getenv("VMK_E2E_TLS_CA"); ca != "" {
		s.options.TLSConfig = tlsConfig(ca, os.Getenv("VMK_E2E_TLS_CERT"), os.Getenv("VMK_E2E_TLS_KEY"), os.Getenv("VMK_E2E_TLS_SERVERNAME"))
	}
	if modes != 1 {
		fail("set exactly one of VMK_E2E_REDIS, VMK_E2E_CLUSTER_NODES and VMK_E2E_SENTINELS")
	}
	if s.options.Prefix == "" || s.backend == "" {
		fail("set VMK_E2E_PREFIX and VMK_E2E_BACKEND")
	}
	positive := func(name string) int {
		n, err := strconv.Atoi(os.Getenv(name))
		if err != nil || n < 1 {
			fail("%s: a positive integer, got %q", name, os.Getenv(name))
		}
		return n
	}
	s.sessions = list("VMK_E2E_SESSIONS")
	if os.Getenv("VMK_E2E_SESSION_COUNT") != "" {
		if len(s.sessions) > 0 {
			fail("set VMK_E2E_SESSIONS or VMK_E2E_SESSION_COUNT, not both")
		}
		prefix := os.Getenv("VMK_E2E_SESSION_PREFIX")
		if prefix == "" {
			prefix = "s"
		}
		for i, n := 0, positive("VMK_E2E_SESSION_COUNT"); i < n; i++ {
			s.sessions = append(s.sessions, prefix+strconv.Itoa(i))
		}
	}
	if len(s.sessions) == 0 {
		fail("set VMK_E2E_SESSIONS or VMK_E2E_SESSION_COUNT")
	}
	if os.Getenv("VMK_E2E_CONCURRENCY") != "" {
		s.concurrency = positive("VMK_E2E_CONCURRENCY")
	}
	if os.Getenv("VMK_E2E_REGISTER_RATE") != "" {
		s.ratePerSecond = float64(positive("VMK_E2E_REGISTER_RATE"))
	}
	if v := os.Getenv("VMK_E2E_REFRESH_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fail("VMK_E2E_REFRESH_INTERVAL: %v", err)
		}
		s.options.RefreshInterval = d
	}
	// With VMK_E2E_CREDENTIALS_KEY (id:base64 key) the backend authenticates every user: each
	// session opens its backend session with its own token and registers it, sealed, as the
	// pair's session credentials.
	if spec := os.Getenv("VMK_E2E_CREDENTIALS_KEY"); spec != "" {
		id, key, _ := strings.Cut(spec, ":")
		ring, err := vmk.NewKeyRing([]vmk.CredentialKey{{ID: id, Key: key}})
		if err != nil {
			fail("%v", err)
		}
		s.options.KeyRing = ring
	}
	return s
}

// each runs fn for every index 0…n-1 on `workers` goroutines; ticket, when not nil, is taken
// before each call (a rate limit).
func each(n, workers int, ticket <-chan time.Time, fn func(i int)) {
	var next int64 = -1
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(atomic.AddInt64(&next, 1))
				if i >= n {
					return
				}
				if ticket != nil {
					<-ticket
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

func main() {
	s := readSettings()
	var backgroundErrors uint64
	var lastBackgroundError atomic.Value
	s.options.OnError = func(err error) {
		atomic.AddUint64(&backgroundErrors, 1)
		lastBackgroundError.Store(err.Error())
	}
	tokenOf := func(session string) string {
		if s.options.KeyRing == nil {
			return ""
		}
		return "Bearer token-of-" + session
	}
	client, err := vmk.NewClient(s.options)
	if err != nil {
		fail("%v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Every backend session first, so that the registrations that follow are timed on their own.
	started := time.Now()
	opened := make([]vmk.ReinitializedBackend, len(s.sessions))
	var openFailure atomic.Value
	each(len(s.sessions), s.concurrency, nil, func(i int) {
		b, err := initialize(ctx, s.backend, tokenOf(s.sessions[i]))
		if err != nil {
			openFailure.Store(fmt.Sprintf("%s: %v", s.sessions[i], err))
			return
		}
		opened[i] = b
	})
	if f := openFailure.Load(); f != nil {
		fail("%v", f)
	}
	say(map[string]interface{}{"event": "initialized", "sessions": len(s.sessions), "ms": time.Since(started).Milliseconds()})

	// Registered from `concurrency` goroutines at once. A registration whose message does not
	// reach Redis (a failover under way) is counted, not fatal: the client keeps it as soft state
	// and sends it again at its next refresh.
	started = time.Now()
	var ticket <-chan time.Time
	if s.ratePerSecond > 0 {
		ticker := time.NewTicker(time.Duration(float64(time.Second) / s.ratePerSecond))
		defer ticker.Stop()
		ticket = ticker.C
	}
	var done int64
	var failures struct {
		sync.Mutex
		n    int
		last string
		at   time.Time
	}
	tenth := (len(s.sessions) + 9) / 10
	each(len(s.sessions), s.concurrency, ticket, func(i int) {
		id := s.sessions[i]
		registration := vmk.Backend{ID: "b1", BackendSessionID: opened[i].BackendSessionID, ProtocolVersion: opened[i].ProtocolVersion}
		if token := tokenOf(id); token != "" {
			registration.Credentials = &vmk.Credentials{Headers: map[string]string{"Authorization": token}, ExpiresAt: time.Now().Add(time.Hour)}
		}
		err := client.RegisterSession(ctx, id, 10*time.Minute, 0, []vmk.Backend{registration})
		var publish *vmk.PublishError
		switch {
		case errors.As(err, &publish):
			failures.Lock()
			failures.n++
			failures.last, failures.at = err.Error(), time.Now()
			failures.Unlock()
		case err != nil:
			fail("%v", err)
		}
		if n := atomic.AddInt64(&done, 1); n%int64(tenth) == 0 && int(n) < len(s.sessions) {
			failures.Lock()
			failed := failures.n
			failures.Unlock()
			say(map[string]interface{}{"event": "progress", "registered": n, "failed": failed})
		}
	})

	// The backend session each vMCP session uses now (what the vMCP itself would hold).
	var mu sync.Mutex
	current := map[string]string{}
	registered := map[string]interface{}{}
	for i, id := range s.sessions {
		current[id] = opened[i].BackendSessionID
		registered[id] = opened[i].BackendSessionID
	}
	line := map[string]interface{}{"event": "registered", "sessions": registered, "ms": time.Since(started).Milliseconds(), "failed": failures.n}
	if failures.n > 0 {
		line["lastFailure"], line["lastFailureAt"] = failures.last, failures.at.UnixMilli()
	}
	say(line)

	handler := func(ctx context.Context, e vmk.Event) error {
		if e.Type != vmk.EventBackendSessionExpired {
			return nil
		}
		mu.Lock()
		cur, ours := current[e.SessionID]
		mu.Unlock()
		if !ours || cur != e.BackendSessionID {
			// Another replica's session, or a backend session already replaced: nothing to do.
			say(map[string]interface{}{"event": "ignored", "sessionId": e.SessionID, "backendSessionId": e.BackendSessionID})
			return nil
		}
		result, err := client.ReinitializeBackend(ctx, e.SessionID, e.BackendID, func(ctx context.Context) (vmk.ReinitializedBackend, error) {
			return initialize(ctx, s.backend, tokenOf(e.SessionID))
		})
		if err != nil {
			// Left pending: delivered again.
			say(map[string]interface{}{"event": "reinitialize_failed", "sessionId": e.SessionID, "error": err.Error()})
			return err
		}
		mu.Lock()
		current[e.SessionID] = result.Backend.BackendSessionID
		mu.Unlock()
		say(map[string]interface{}{"event": "reinitialized", "sessionId": e.SessionID, "old": e.BackendSessionID, "new": result.Backend.BackendSessionID,
			"lock": result.Lock, "state": result.State, "epoch": result.Epoch, "restore": result.SchedulerRestoreRequested})
		return nil
	}
	readerDone := make(chan error, 1)
	go func() { readerDone <- client.ReadEvents(ctx, "go-e2e", "go-e2e-1", handler) }()

	stats := func(event string) map[string]interface{} {
		st := client.Stats()
		line := map[string]interface{}{"event": event, "published": st.MessagesPublished, "publishFailures": st.PublishFailures, "refreshes": st.Refreshes,
			"eventsHandled": st.EventsHandled, "eventsRejected": st.EventsRejected, "eventsFailed": st.EventsFailed, "backgroundErrors": atomic.LoadUint64(&backgroundErrors)}
		if e := lastBackgroundError.Load(); e != nil {
			line["lastBackgroundError"] = e
		}
		return line
	}

	lines := bufio.NewScanner(os.Stdin)
	for ctx.Err() == nil && lines.Scan() {
		fields := strings.Fields(lines.Text())
		switch {
		case len(fields) >= 2 && fields[0] == "end":
			for _, id := range fields[1:] {
				if err := client.EndSession(ctx, id, "e2e"); err != nil {
					fail("%v", err)
				}
			}
			say(map[string]interface{}{"event": "ended", "sessionId": fields[1], "sessionIds": fields[1:]})
		case len(fields) == 2 && fields[0] == "touch":
			if err := client.Touch(ctx, fields[1], []string{"b1"}, nil); err != nil {
				fail("%v", err)
			}
			say(map[string]interface{}{"event": "touched", "sessionId": fields[1]})
		case len(fields) == 1 && fields[0] == "stats":
			say(stats("stats"))
		case len(fields) == 1 && fields[0] == "quit":
			cancel()
		default:
			fail("unknown command %q", lines.Text())
		}
	}
	cancel()
	// ReadEvents ends with ctx.Err() once cancelled: anything else is a failure.
	if err := <-readerDone; !errors.Is(err, context.Canceled) {
		fail("ReadEvents: %v", err)
	}
	closeCtx, closed := context.WithTimeout(context.Background(), 10*time.Second)
	defer closed()
	if err := client.Close(closeCtx); err != nil {
		fail("Close: %v", err)
	}
	say(stats("stopped"))
}

// tlsConfig trusts the CA in caFile, presents the client certificate when given, and checks the
// servers' certificates against serverName when given (else the host connected to).
func tlsConfig(caFile, certFile, keyFile, serverName string) *tls.Config {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		fail("VMK_E2E_TLS_CA: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		fail("VMK_E2E_TLS_CA: no certificate in %s", caFile)
	}
	config := &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			fail("VMK_E2E_TLS_CERT/KEY: %v", err)
		}
		config.Certificates = []tls.Certificate{cert}
	}
	return config
}
