--[[
  Starts a keepalive tick where the pair and its backend share a node (one Redis, Sentinel):
  takes the pair lock (when the scripts hold it), reads the pair, decides against the backend's
  breaker.
  Input:
    KEYS[1] pair hash      <shard prefix>:pair:<sessionId>:<backendId>
    KEYS[2] backend hash   <prefix>:backend:<backendId>
    KEYS[3] pair lock      <shard prefix>:lock:<sessionId>:<backendId>
    ARGV[1] the begin input, JSON (BeginRecord in src/store/scripts.ts), the same for
      begin-pair-2.lua and begin-breaker-1.lua:
      now                  ms
      lock                 optional { token, ttlMs }: the scripts take the pair lock with this token
        and TTL; absent when the lock is held outside the scripts (a Redlock quorum)
      probeToken           the token a probe claim is made with (the proof of it at the finish)
      probeLeaseMs         how long a probe claim lasts before another worker may take it over
      pingRetryDelayMs     next ping retry of a backend on its tool, from now (jittered)
      fallback             true when the backend may switch between ping and its tool
      trafficWindowMs      a pair that carried traffic within it is skipped; 0 = never
      credentialsMarginMs  optional, refreshBeforeMs: begin_pair in includes/pair.lua
  Output: JSON { decision, lock, pair, notice, backend } (BeginReply in src/store/scripts.ts)
    decision  the pair half's: 'locked' | 'ended' | 'disabled' | 'credentials_expired' |
      'recent_traffic' — the skip reasons of the metrics and events — or 'go', when `backend`
      holds the backend half's (begin_breaker in includes/backend.lua: 'breaker_open' | 'call' |
      'probe', the breaker state, the learned method, pingRetry)
    lock      'kept' | 'released' | 'none' after the tick's start (keep_lock in includes/pair.lua)
    pair      the pair hash as read (field -> value); absent when there is none
    notice    absent | 'expiring' | 'expired': the credentials notice this tick publishes
]]
--- @include "pair"
--- @include "backend"
local t = cjson.decode(ARGV[1])
if not take_lock(KEYS[3], t.lock) then return cjson.encode({decision = 'locked', lock = 'none'}) end
local r = begin_pair(KEYS[1], t)
local step = r.decision
if step == 'go' then
  r.backend = begin_breaker(KEYS[2], t)
  step = r.backend.decision
  if step == 'breaker_open' then redis.call('HSET', KEYS[1], 'lastAt', t.now, 'last', 'skipped:breaker_open') end
end
r.lock = keep_lock(KEYS[3], t.lock, step)
return cjson.encode(r)
