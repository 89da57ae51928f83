package vmcpkeepalive

import (
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
)

// The scripts are copies of packages/shared/lua/*.lua (scripts_test.go keeps them equal), so
// that this module builds on its own. They run by SHA (EVALSHA, then EVAL once when the server
// does not have the script yet).

//go:embed lua/release-lock-1.lua
var releaseLockSource string

//go:embed lua/reinitialize-pair-1.lua
var reinitializePairSource string

// releaseLockScript: KEYS[1] the lock, ARGV[1] the holder's token → 1 released, 0 not held.
var releaseLockScript = &luaScript{source: releaseLockSource}

// reinitializePairScript: KEYS[1] the pair hash, ARGV[1] backend session id, ARGV[2] protocol
// version or "", ARGV[3] now (ms) → {"applied", epoch, previousStatus} | {"unknown"}.
var reinitializePairScript = &luaScript{source: reinitializePairSource}

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
