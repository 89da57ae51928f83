--[[
  The pair half of a tick's start on a Redis Cluster, where the backend hash has a slot of its own
  (one breaker for the whole cluster) and the pair shares its shard's slot with its lock.
  begin-breaker-1.lua is the backend half, run when this says 'go'.
  Input:
    KEYS[1] pair hash      <shard prefix>:pair:<sessionId>:<backendId>
    KEYS[2] pair lock      <shard prefix>:lock:<sessionId>:<backendId>
    ARGV[1] now (ms)
    ARGV[2] traffic window (ms), as begin-tick-3.lua
    ARGV[3] tick token
    ARGV[4] lock TTL (ms); 0 when the lock is held outside the scripts (Redlock quorum)
    ARGV[5] credentials margin, ARGV[6] credentials.refresh_before (ms), as begin-tick-3.lua
  Output: { decision, lockHeld (0|1), pairHashFlat, notice }
    decision: 'locked' | 'ended' | 'disabled' | 'credentials_expired' | 'recent_traffic' | 'go'
    notice: as begin-tick-3.lua
]]
--- @include "pair"
local token, ttl = ARGV[3], tonumber(ARGV[4])
if not take_lock(KEYS[2], token, ttl) then return {'locked', 0, {}, ''} end
local p = begin_pair(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5]), tonumber(ARGV[6]))
return {p[1], keep_lock(KEYS[2], token, p[1]), p[2], p[3]}
