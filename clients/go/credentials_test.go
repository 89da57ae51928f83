package vmcpkeepalive

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func randomKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

type tsRingKey struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

type tsOpened struct {
	OK          bool   `json:"ok"`
	Reason      string `json:"reason"`
	Credentials struct {
		Headers   map[string]string `json:"headers"`
		ExpiresAt int64             `json:"expiresAt"`
	} `json:"credentials"`
}

func TestGoSealsWhatTheTypeScriptKeyRingOpens(t *testing.T) {
	keys := []CredentialKey{{ID: "k2", Key: randomKey(t)}, {ID: "k1", Key: randomKey(t)}}
	ring, err := NewKeyRing(keys)
	if err != nil {
		t.Fatal(err)
	}
	tsRing := []tsRingKey{{keys[0].ID, keys[0].Key}, {keys[1].ID, keys[1].Key}}
	headers := map[string]string{"authorization": "Bearer tok-1", "x-tenant": "acme"}
	expires := time.UnixMilli(4102444800123)
	for _, c := range []Credentials{{Headers: headers, ExpiresAt: expires}, {Headers: headers}} {
		sealed, err := ring.Seal("s-1", "b.2", c)
		if err != nil {
			t.Fatal(err)
		}
		if sealed.Kid != "k2" || sealed.V != 1 {
			t.Fatalf("sealed with %s v%d, want the first key, v1", sealed.Kid, sealed.V)
		}
		var opened tsOpened
		interop(t, map[string]interface{}{"op": "open", "ring": tsRing, "sessionId": "s-1", "backendId": "b.2", "sealed": sealed}, &opened)
		if !opened.OK || !reflect.DeepEqual(opened.Credentials.Headers, headers) || opened.Credentials.ExpiresAt != c.ExpiresAt.UnixMilli()*boolInt(!c.ExpiresAt.IsZero()) {
			t.Fatalf("TypeScript opened %+v", opened)
		}
		// Bound to the pair: the same envelope on another backend does not open.
		interop(t, map[string]interface{}{"op": "open", "ring": tsRing, "sessionId": "s-1", "backendId": "b3", "sealed": sealed}, &opened)
		if opened.OK || opened.Reason != "undecryptable" {
			t.Fatalf("another pair opened it: %+v", opened)
		}
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func TestGoOpensWhatTheTypeScriptKeyRingSeals(t *testing.T) {
	keys := []CredentialKey{{ID: "old", Key: randomKey(t)}, {ID: "new", Key: randomKey(t)}}
	headers := map[string]string{"authorization": "Bearer from-node"}
	var sealed SealedCredentials
	interop(t, map[string]interface{}{"op": "seal", "ring": []tsRingKey{{keys[1].ID, keys[1].Key}}, "sessionId": "s1", "backendId": "b1", "headers": headers, "expiresAt": 1900000000000}, &sealed)
	// A ring whose sealing key is another one still opens it (rotation).
	ring, err := NewKeyRing(keys)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ring.Open("s1", "b1", sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Headers, headers) || got.ExpiresAt.UnixMilli() != 1900000000000 {
		t.Fatalf("opened %+v", got)
	}
	later := *sealed.ExpiresAt + 1
	extended := sealed
	extended.ExpiresAt = &later
	if _, err := ring.Open("s1", "b1", extended); !errors.Is(err, ErrUndecryptable) {
		t.Fatalf("a later expiry opened: %v", err)
	}
	if _, err := ring.Open("s2", "b1", sealed); !errors.Is(err, ErrUndecryptable) {
		t.Fatalf("another session opened: %v", err)
	}
	only, _ := NewKeyRing([]CredentialKey{{ID: "other", Key: randomKey(t)}})
	if _, err := only.Open("s1", "b1", sealed); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestKeyRingRefusesBadKeysNamingThem(t *testing.T) {
	for _, c := range []struct {
		keys []CredentialKey
		want string
	}{
		{nil, "at least one key"},
		{[]CredentialKey{{ID: "k1", Key: "c2hvcnQ="}}, "credential key 0 (k1): must be 32 bytes, base64"},
		{[]CredentialKey{{ID: "k1", Key: randomKey(t)}, {ID: "k1", Key: randomKey(t)}}, "credential key 1: id k1 is used twice"},
		{[]CredentialKey{{ID: "bad id", Key: randomKey(t)}}, "credential key 0: id must be"},
	} {
		_, err := NewKeyRing(c.keys)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewKeyRing: %v, want %q", err, c.want)
		}
	}
}

func TestSealRefusesHeadersTheWorkersRefuseNamingThemNotTheirValues(t *testing.T) {
	ring, err := NewKeyRing([]CredentialKey{{ID: "k1", Key: randomKey(t)}})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]map[string]string{
		`headers["Mcp-Session-Id"] is set by the worker itself`:                                   {"Mcp-Session-Id": "other"},
		`headers["Authorization"] must be at most 8192 characters of visible ASCII, space or tab`: {"Authorization": "Bearer planted\r\nX-Evil: 1"},
		`headers["bad header"] must be an HTTP header name`:                                       {"bad header": "x"},
		`headers must hold 1 to 32 headers`:                                                       {},
	}
	for want, headers := range cases {
		_, err := ring.Seal("s1", "b1", Credentials{Headers: headers})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Seal(%v) = %v, want an error with %q", headers, err, want)
		}
		if strings.Contains(err.Error(), "planted") {
			t.Fatalf("the error shows a header value: %v", err)
		}
	}
}
