// Command e2edriver is a stand-in vMCP written with the Go client, driven by the end-to-end test
// (test/go-client.test.ts) over stdin and stdout, against real schedulers, workers and an MCP
// backend. It opens backend sessions with MCP initialize, registers them through the ingress
// stream, re-initializes a backend when the event stream reports its session expired, and ends
// sessions when told to.
//
// Environment: VMK_E2E_REDIS (redis:// URL), VMK_E2E_PREFIX, VMK_E2E_BACKEND (MCP endpoint URL),
// VMK_E2E_SESSIONS (comma-separated vMCP session ids, each registered with backend "b1").
// stdin lines: "end <sessionId>", "touch <sessionId>", "quit". stdout: one JSON object per line.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
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
	return http.DefaultClient.Do(req)
}

func main() {
	redisURL, prefix, backend := os.Getenv("VMK_E2E_REDIS"), os.Getenv("VMK_E2E_PREFIX"), os.Getenv("VMK_E2E_BACKEND")
	sessions := strings.Split(os.Getenv("VMK_E2E_SESSIONS"), ",")
	if redisURL == "" || prefix == "" || backend == "" || sessions[0] == "" {
		fail("set VMK_E2E_REDIS, VMK_E2E_PREFIX, VMK_E2E_BACKEND and VMK_E2E_SESSIONS")
	}
	// With VMK_E2E_CREDENTIALS_KEY (id:base64 key) the backend authenticates every user: each
	// session opens its backend session with its own token and registers it, sealed, as the
	// pair's session credentials.
	options := vmk.Options{Address: redisURL, Prefix: prefix, ReplicaID: "go-e2e", LockTimeout: 3 * time.Second}
	if spec := os.Getenv("VMK_E2E_CREDENTIALS_KEY"); spec != "" {
		id, key, _ := strings.Cut(spec, ":")
		ring, err := vmk.NewKeyRing([]vmk.CredentialKey{{ID: id, Key: key}})
		if err != nil {
			fail("%v", err)
		}
		options.KeyRing = ring
	}
	tokenOf := func(session string) string {
		if options.KeyRing == nil {
			return ""
		}
		return "Bearer token-of-" + session
	}
	client, err := vmk.NewClient(options)
	if err != nil {
		fail("%v", err)
	}
	defer client.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The backend session each vMCP session uses now (what the vMCP itself would hold).
	var mu sync.Mutex
	current := map[string]string{}
	for _, s := range sessions {
		b, err := initialize(ctx, backend, tokenOf(s))
		if err != nil {
			fail("%s: %v", s, err)
		}
		registration := vmk.Backend{ID: "b1", BackendSessionID: b.BackendSessionID, ProtocolVersion: b.ProtocolVersion}
		if token := tokenOf(s); token != "" {
			registration.Credentials = &vmk.Credentials{Headers: map[string]string{"Authorization": token}, ExpiresAt: time.Now().Add(time.Hour)}
		}
		if err := client.RegisterSession(ctx, s, 10*time.Minute, 0, []vmk.Backend{registration}); err != nil {
			fail("%v", err)
		}
		current[s] = b.BackendSessionID
	}

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
			return initialize(ctx, backend, tokenOf(e.SessionID))
		})
		if err != nil {
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

	mu.Lock()
	registered := map[string]interface{}{}
	for s, b := range current {
		registered[s] = b
	}
	mu.Unlock()
	say(map[string]interface{}{"event": "registered", "sessions": registered})

	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		fields := strings.Fields(lines.Text())
		switch {
		case len(fields) == 2 && fields[0] == "end":
			if err := client.EndSession(ctx, fields[1], "e2e"); err != nil {
				fail("%v", err)
			}
			say(map[string]interface{}{"event": "ended", "sessionId": fields[1]})
		case len(fields) == 2 && fields[0] == "touch":
			if err := client.Touch(ctx, fields[1], []string{"b1"}, nil); err != nil {
				fail("%v", err)
			}
			say(map[string]interface{}{"event": "touched", "sessionId": fields[1]})
		case len(fields) == 1 && fields[0] == "quit":
			cancel()
		default:
			fail("unknown command %q", lines.Text())
		}
		if ctx.Err() != nil {
			break
		}
	}
	cancel()
	if err := <-readerDone; err != nil {
		fail("ReadEvents: %v", err)
	}
	stats := client.Stats()
	say(map[string]interface{}{"event": "stopped", "published": stats.MessagesPublished, "eventsHandled": stats.EventsHandled, "eventsRejected": stats.EventsRejected})
}
