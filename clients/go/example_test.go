package vmcpkeepalive_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	vmk "github.com/vmcp-keepalive/clients/go"
)

// A vMCP replica's client on a standalone Redis. (Compiled, not run: it needs the deployment.)
func ExampleNewClient() {
	client, err := vmk.NewClient(vmk.Options{
		Address:   "redis://127.0.0.1:6379",
		Prefix:    "vmk",
		ReplicaID: "vmcp-1",
		Logger:    log.New(os.Stderr, "keepalive ", log.LstdFlags),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(context.Background())

	ctx := context.Background()
	err = client.RegisterSession(ctx, "s1", 30*time.Minute, 0, []vmk.Backend{
		{ID: "github", BackendSessionID: "mcp-session-1", ProtocolVersion: "2025-06-18"},
	})
	if err != nil {
		log.Printf("session s1 is not kept alive until its next refresh: %v", err)
	}
}

// The event loop of a replica: re-initialize a backend whose session expired, under the pair
// lock. (Compiled, not run.)
func ExampleClient_ReadEvents() {
	client, _ := vmk.NewClient(vmk.Options{Address: "127.0.0.1:6379", ReplicaID: "vmcp-1"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := client.ReadEvents(ctx, "my-vmcp", "vmcp-1", func(ctx context.Context, e vmk.Event) error {
		if e.Type != vmk.EventBackendSessionExpired {
			return nil
		}
		_, err := client.ReinitializeBackend(ctx, e.SessionID, e.BackendID, func(ctx context.Context) (vmk.ReinitializedBackend, error) {
			return vmk.ReinitializedBackend{BackendSessionID: "new-session", ProtocolVersion: "2025-06-18"}, nil
		})
		return err // non-nil: the event stays pending and comes again
	})
	if !errors.Is(err, context.Canceled) {
		log.Print(err)
	}
}

// A reader hands over event types it does not know, and ignores fields it does not know.
func ExampleDecodeEvent() {
	for _, raw := range []string{
		`{"type":"backend.unauthorized","v":1,"occurredAt":"2026-12-07T12:10:00.000Z","sessionId":"s1","backendId":"github","status":401,"addedLater":true}`,
		`{"type":"backend.something_new","v":1,"occurredAt":"2026-12-07T12:10:00.000Z","backendId":"github"}`,
	} {
		e, err := vmk.DecodeEvent([]byte(raw))
		fmt.Println(e.Type, e.Known(), e.Status, err)
	}
	// Output:
	// backend.unauthorized true 401 <nil>
	// backend.something_new false 0 <nil>
}

// A deployment without keepalive holds Noop where others hold a *Client.
func ExampleNoop() {
	var keepalive vmk.Keepalive = vmk.Noop{}
	result, err := keepalive.ReinitializeBackend(context.Background(), "s1", "github", func(ctx context.Context) (vmk.ReinitializedBackend, error) {
		return vmk.ReinitializedBackend{BackendSessionID: "new-session"}, nil
	})
	fmt.Println(result.Backend.BackendSessionID, result.State, err)
	// Output: new-session unknown_pair <nil>
}

// Session credentials are sealed for the workers' key ring before they leave the process.
func ExampleKeyRing_Seal() {
	ring, err := vmk.NewKeyRing([]vmk.CredentialKey{{ID: "k1", Key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}})
	if err != nil {
		log.Fatal(err)
	}
	sealed, _ := ring.Seal("s1", "github", vmk.Credentials{Headers: map[string]string{"authorization": "Bearer token"}})
	opened, _ := ring.Open("s1", "github", sealed)
	_, err = ring.Open("s2", "github", sealed) // another pair's envelope does not open
	fmt.Println(sealed.Kid, opened.Headers["authorization"], errors.Is(err, vmk.ErrUndecryptable))
	// Output: k1 Bearer token true
}
