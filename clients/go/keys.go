package vmcpkeepalive

import (
	"fmt"
	"strings"
)

// ClusterSlots is the number of Redis Cluster hash slots.
const ClusterSlots = 16384

// DefaultClusterShards is the default number of keepalive shards on a Redis Cluster (1 elsewhere).
const DefaultClusterShards = 16

// MaxShards is the most keepalive shards a deployment can have.
const MaxShards = 1024

// Keys is the Redis key layout of a deployment, equal to createKeys in
// packages/shared/src/redis/keys.ts (docs/contract.md, "Key layout"). A session's keys live in
// its shard; when Tagged, a shard's prefix carries a Redis Cluster hash tag so that every key of
// a shard sits in one hash slot.
type Keys struct {
	Prefix string
	Shards int
	Tagged bool

	shardPrefixes []string
}

// NewKeys builds the layout for a prefix, a number of shards (1-1024) and whether keys carry
// hash tags (required on a Redis Cluster, and whenever shards > 1).
func NewKeys(prefix string, shards int, tagged bool) (*Keys, error) {
	if shards < 1 || shards > MaxShards {
		return nil, fmt.Errorf("shards must be an integer 1-%d, got %d", MaxShards, shards)
	}
	if shards > 1 {
		tagged = true
	}
	if prefix == "" {
		return nil, fmt.Errorf("prefix must not be empty")
	}
	if tagged && strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("prefix %q: no { } when keys are hash-tagged (cluster mode or shards > 1); the layout adds its own tags", prefix)
	}
	k := &Keys{Prefix: prefix, Shards: shards, Tagged: tagged, shardPrefixes: make([]string, shards)}
	for i := range k.shardPrefixes {
		if tagged {
			k.shardPrefixes[i] = prefix + ":{" + ShardTag(i, shards) + "}"
		} else {
			k.shardPrefixes[i] = prefix
		}
	}
	return k, nil
}

// HashSlot is the Redis Cluster hash slot of a key: CRC16/XMODEM of its bytes (of the part inside
// the first non-empty {…} when there is one) modulo 16384, as CLUSTER KEYSLOT answers.
func HashSlot(key string) int {
	if open := strings.IndexByte(key, '{'); open != -1 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	return int(crc16([]byte(key)) % ClusterSlots)
}

func crc16(bytes []byte) uint16 {
	var crc uint16
	for _, b := range bytes {
		crc ^= uint16(b) << 8
		for bit := 0; bit < 8; bit++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// ShardOfSession is the shard of a session: ⌊slot × shards / 16384⌋ of the session id's own slot.
func ShardOfSession(sessionID string, shards int) int {
	if shards <= 1 {
		return 0
	}
	return HashSlot(sessionID) * shards / ClusterSlots
}

// ShardTag is the hash tag of shard `shard` of `shards`: the first "<shard>.<k>" (k = 0, 1, …)
// whose slot lies in the shard's equal share of the slot range.
func ShardTag(shard, shards int) string {
	from := shard * ClusterSlots / shards
	to := (shard + 1) * ClusterSlots / shards
	for k := 0; ; k++ {
		tag := fmt.Sprintf("%d.%d", shard, k)
		if slot := HashSlot(tag); slot >= from && slot < to {
			return tag
		}
	}
}

// ShardOf is the shard of a session in this layout.
func (k *Keys) ShardOf(sessionID string) int { return ShardOfSession(sessionID, k.Shards) }

// ShardPrefix is "<prefix>" untagged, "<prefix>:{<tag>}" tagged.
func (k *Keys) ShardPrefix(shard int) string { return k.shardPrefixes[shard] }

func (k *Keys) of(sessionID string) string { return k.shardPrefixes[k.ShardOf(sessionID)] }

// Session is the hash of one vMCP session (written by the scheduler).
func (k *Keys) Session(sessionID string) string { return k.of(sessionID) + ":session:" + sessionID }

// Pair is the hash of one session×backend pair.
func (k *Keys) Pair(sessionID, backendID string) string {
	return k.of(sessionID) + ":pair:" + sessionID + ":" + backendID
}

// PairLock is the lock resource of a pair, shared with the workers.
func (k *Keys) PairLock(sessionID, backendID string) string {
	return k.of(sessionID) + ":lock:" + sessionID + ":" + backendID
}

// SessionMutex is the schedulers' per-session mutex.
func (k *Keys) SessionMutex(sessionID string) string { return k.of(sessionID) + ":smutex:" + sessionID }

// Backend is a backend's breaker hash (a slot of its own when tagged).
func (k *Keys) Backend(backendID string) string {
	if k.Tagged {
		return k.Prefix + ":backend:{" + backendID + "}"
	}
	return k.Prefix + ":backend:" + backendID
}

// SessionsPrefix is "<sessions prefix>": "<prefix>" untagged, "<prefix>:{sessions}" tagged.
func (k *Keys) SessionsPrefix() string {
	if k.Tagged {
		return k.Prefix + ":{sessions}"
	}
	return k.Prefix
}

// EventsPrefix is "<events prefix>": "<prefix>" untagged, "<prefix>:{events}" tagged.
func (k *Keys) EventsPrefix() string {
	if k.Tagged {
		return k.Prefix + ":{events}"
	}
	return k.Prefix
}

// SessionMessages is the ingress stream the schedulers read lifecycle messages from (field "message").
func (k *Keys) SessionMessages() string { return k.SessionsPrefix() + ":session-messages" }

// SessionEvents is the stream every event is added to (field "event").
func (k *Keys) SessionEvents() string { return k.EventsPrefix() + ":session-events" }
