package vmcpkeepalive

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Credentials are the headers a vMCP sends a backend that authenticates every user (for
// example "authorization"), sealed for the workers, which open them for one keepalive call.
type Credentials struct {
	Headers map[string]string
	// ExpiresAt is when the token stops being valid; zero = no expiry.
	ExpiresAt time.Time
}

// SealedCredentials is the envelope on the wire (packages/shared/src/credentials/credential-key-ring.ts):
// AES-256-GCM, iv, tag and data in standard base64, expiresAt in ms since the epoch.
type SealedCredentials struct {
	V         int    `json:"v"`
	Kid       string `json:"kid"`
	IV        string `json:"iv"`
	Tag       string `json:"tag"`
	Data      string `json:"data"`
	ExpiresAt *int64 `json:"expiresAt,omitempty"`
}

// CredentialKey is one key of a ring: an id (named in every envelope) and 32 random bytes, base64.
type CredentialKey struct {
	ID  string
	Key string
}

// ErrUnknownKey: no key of the ring has the envelope's kid.
var ErrUnknownKey = errors.New("credentials: no key of the ring has this id")

// ErrUndecryptable: the key is known but the data, tag or associated data do not match.
var ErrUndecryptable = errors.New("credentials: envelope does not open (wrong pair, expiry, key or corrupted data)")

const (
	ivBytes  = 12
	tagBytes = 16
	keyBytes = 32
)

// KeyRing seals with its first key and opens with any of its keys, so keys rotate without
// downtime. It is the same ring (ids and keys) the workers are configured with.
type KeyRing struct {
	sealingKeyID string
	keys         map[string]cipher.AEAD
}

// NewKeyRing builds a ring. Errors name the key by position and id, never its value.
func NewKeyRing(keys []CredentialKey) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("credential key ring: at least one key is needed")
	}
	r := &KeyRing{sealingKeyID: keys[0].ID, keys: map[string]cipher.AEAD{}}
	for i, k := range keys {
		if !idPattern.MatchString(k.ID) {
			return nil, fmt.Errorf("credential key %d: id must be %s", i, idRule)
		}
		if _, dup := r.keys[k.ID]; dup {
			return nil, fmt.Errorf("credential key %d: id %s is used twice", i, k.ID)
		}
		raw, err := base64.StdEncoding.DecodeString(k.Key)
		if err != nil || len(raw) != keyBytes {
			return nil, fmt.Errorf("credential key %d (%s): must be %d bytes, base64", i, k.ID, keyBytes)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("credential key %d (%s): %w", i, k.ID, err)
		}
		gcm, err := cipher.NewGCMWithTagSize(block, tagBytes)
		if err != nil {
			return nil, fmt.Errorf("credential key %d (%s): %w", i, k.ID, err)
		}
		r.keys[k.ID] = gcm
	}
	return r, nil
}

// SealingKeyID is the id of the key that seals.
func (r *KeyRing) SealingKeyID() string { return r.sealingKeyID }

// associatedData binds an envelope to its pair and expiry:
// "vmk-credentials:1:<sessionId>:<backendId>:<expiresAt ms or empty>".
func associatedData(sessionID, backendID string, expiresAt *int64) []byte {
	exp := ""
	if expiresAt != nil {
		exp = strconv.FormatInt(*expiresAt, 10)
	}
	return []byte("vmk-credentials:1:" + sessionID + ":" + backendID + ":" + exp)
}

type credentialsPlaintext struct {
	Headers map[string]string `json:"headers"`
}

var (
	headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
	// The headers the worker sets itself on every call: credentials may not replace them.
	reservedHeaders = map[string]bool{"mcp-session-id": true, "mcp-protocol-version": true, "content-type": true, "content-length": true, "accept": true, "host": true, "connection": true, "transfer-encoding": true}
)

// validHeaderValue: at most 8192 characters of visible ASCII, space or tab.
func validHeaderValue(v string) bool {
	if len(v) > 8192 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c != '\t' && (c < 0x20 || c > 0x7e) {
			return false
		}
	}
	return true
}

// headerProblems says what the workers would refuse in a set of credential headers (the rules of
// docs/contract.md, "Session credentials"), naming headers, never their values.
func headerProblems(headers map[string]string) []string {
	var problems []string
	if len(headers) < 1 || len(headers) > 32 {
		problems = append(problems, "headers must hold 1 to 32 headers")
	}
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		switch {
		case !headerName.MatchString(name):
			problems = append(problems, fmt.Sprintf("headers[%q] must be an HTTP header name", name))
		case reservedHeaders[strings.ToLower(name)]:
			problems = append(problems, fmt.Sprintf("headers[%q] is set by the worker itself", name))
		}
		if !validHeaderValue(headers[name]) {
			problems = append(problems, fmt.Sprintf("headers[%q] must be at most 8192 characters of visible ASCII, space or tab", name))
		}
	}
	return problems
}

// Seal encrypts one pair's credentials with the sealing key. It refuses headers the workers would
// refuse (the error names the header, never its value).
func (r *KeyRing) Seal(sessionID, backendID string, c Credentials) (SealedCredentials, error) {
	headers := c.Headers
	if problems := headerProblems(headers); len(problems) > 0 {
		return SealedCredentials{}, fmt.Errorf("credentials of %s/%s: %s", sessionID, backendID, strings.Join(problems, "; "))
	}
	plain, err := json.Marshal(credentialsPlaintext{Headers: headers})
	if err != nil {
		return SealedCredentials{}, fmt.Errorf("credentials of %s/%s: %w", sessionID, backendID, err)
	}
	var expiresAt *int64
	if !c.ExpiresAt.IsZero() {
		ms := c.ExpiresAt.UnixMilli()
		if ms <= 0 {
			return SealedCredentials{}, fmt.Errorf("credentials of %s/%s: expiresAt must be after 1970", sessionID, backendID)
		}
		expiresAt = &ms
	}
	iv := make([]byte, ivBytes)
	if _, err := rand.Read(iv); err != nil {
		return SealedCredentials{}, fmt.Errorf("credentials: random iv: %w", err)
	}
	sealed := r.keys[r.sealingKeyID].Seal(nil, iv, plain, associatedData(sessionID, backendID, expiresAt))
	// Go appends the tag to the ciphertext; the envelope carries them apart.
	data, tag := sealed[:len(sealed)-tagBytes], sealed[len(sealed)-tagBytes:]
	return SealedCredentials{
		V:         1,
		Kid:       r.sealingKeyID,
		IV:        base64.StdEncoding.EncodeToString(iv),
		Tag:       base64.StdEncoding.EncodeToString(tag),
		Data:      base64.StdEncoding.EncodeToString(data),
		ExpiresAt: expiresAt,
	}, nil
}

// Open decrypts an envelope sealed for this pair; ErrUnknownKey or ErrUndecryptable otherwise.
func (r *KeyRing) Open(sessionID, backendID string, s SealedCredentials) (Credentials, error) {
	gcm, ok := r.keys[s.Kid]
	if !ok {
		return Credentials{}, fmt.Errorf("kid %s: %w", s.Kid, ErrUnknownKey)
	}
	if s.V != 1 {
		return Credentials{}, fmt.Errorf("kid %s: envelope version %d: %w", s.Kid, s.V, ErrUndecryptable)
	}
	iv, err1 := base64.StdEncoding.DecodeString(s.IV)
	tag, err2 := base64.StdEncoding.DecodeString(s.Tag)
	data, err3 := base64.StdEncoding.DecodeString(s.Data)
	if err1 != nil || err2 != nil || err3 != nil || len(iv) != ivBytes || len(tag) != tagBytes {
		return Credentials{}, fmt.Errorf("kid %s: %w", s.Kid, ErrUndecryptable)
	}
	plain, err := gcm.Open(nil, iv, append(data, tag...), associatedData(sessionID, backendID, s.ExpiresAt))
	if err != nil {
		return Credentials{}, fmt.Errorf("kid %s: %w", s.Kid, ErrUndecryptable)
	}
	var p credentialsPlaintext
	if err := json.Unmarshal(plain, &p); err != nil || p.Headers == nil {
		return Credentials{}, fmt.Errorf("kid %s: %w", s.Kid, ErrUndecryptable)
	}
	c := Credentials{Headers: p.Headers}
	if s.ExpiresAt != nil {
		c.ExpiresAt = time.UnixMilli(*s.ExpiresAt)
	}
	return c, nil
}
