--[[
  Starts a keepalive tick where the pair and its backend share a node (one Redis, Sentinel):
  takes the pair lock (lock TTL > 0), reads the pair, decides against the backend's breaker.
  Input:
    KEYS[1] pair hash      <prefix>:pair:<sessionId>:<backendId>
    KEYS[2] backend hash   <prefix>:backend:<backendId>
    KEYS[3] pair lock      <prefix>:lock:<sessionId>:<backendId>
    ARGV[1] now (ms)
    ARGV[2] tick token: the lock token, and proof of probe ownership when the tick finishes
    ARGV[3] probe lease (ms)
    ARGV[4] ping retry delay (ms, jittered)
    ARGV[5] '1' when the backend may switch between ping and its tool, else '0'
    ARGV[6] traffic window (ms): a pair that carried traffic within it is skipped; 0 = never
    ARGV[7] lock TTL (ms); 0 when the lock is held outside the scripts (Redlock quorum)
    ARGV[8] credentials margin (ms; -1: the backend takes no session credentials) and
    ARGV[9] credentials.refresh_before (ms, 0 unset): begin_pair in includes/pair.lua
  Output: { decision, lockHeld (0|1), breakerState, learnedMethod, pingRetry (0|1), pairHashFlat, notice }
    decision: 'locked' | 'ended' | 'disabled' | 'credentials_expired' | 'recent_traffic' |
      'breaker_open' | 'call' | 'probe' — the skip reasons of the metrics and events, or a call
    notice: '' | 'expiring' | 'expired': the credentials notice this tick publishes
    lockHeld: the script's lock stays held for the rest of the tick (KEEPS_LOCK in includes/pair.lua)
]]
--- @include "pair"
--- @include "backend"
local pk, bk, lk = KEYS[1], KEYS[2], KEYS[3]
local now, token, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[7])
if not take_lock(lk, token, ttl) then return {'locked', 0, '', '', 0, {}, ''} end
local p = begin_pair(pk, now, tonumber(ARGV[6]), tonumber(ARGV[8]), tonumber(ARGV[9]))
local r = {p[1], '', '', 0}
if p[1] == 'go' then
  r = begin_breaker(bk, now, token, tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])
  if r[1] == 'breaker_open' then redis.call('HSET', pk, 'lastAt', now, 'last', 'skipped:breaker_open') end
end
return {r[1], keep_lock(lk, token, r[1]), r[2], r[3], r[4], p[2], p[3]}
