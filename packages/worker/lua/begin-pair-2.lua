--[[
  The pair half of a tick's start on a Redis Cluster, where the backend hash has a slot of its own
  (one breaker for the whole cluster) and the pair shares its shard's slot with its lock.
  begin-breaker-1.lua is the backend half, run when this says 'go'.
  Input:
    KEYS[1] pair hash      <shard prefix>:pair:<sessionId>:<backendId>
    KEYS[2] pair lock      <shard prefix>:lock:<sessionId>:<backendId>
    ARGV[1] the begin input, JSON, as begin-tick-3.lua
  Output: JSON { decision, lock, pair, notice }, as begin-tick-3.lua without `backend`
    decision: 'locked' | 'ended' | 'disabled' | 'credentials_expired' | 'recent_traffic' | 'go'
]]
--- @include "pair"
local t = cjson.decode(ARGV[1])
if not take_lock(KEYS[2], t.lock) then return cjson.encode({decision = 'locked', lock = 'none'}) end
local r = begin_pair(KEYS[1], t)
r.lock = keep_lock(KEYS[2], t.lock, r.decision)
return cjson.encode(r)
