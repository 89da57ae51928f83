--[[
  The backend half of a tick's start on a Redis Cluster (after begin-pair-2.lua said 'go'), in
  the backend's own hash slot, so that the breaker is one for the whole cluster.
  Input:
    KEYS[1] backend hash   <prefix>:backend:{<backendId>}
    ARGV[1] the begin input, JSON, as begin-tick-3.lua
  Output: JSON { decision, breaker, method, pingRetry }: begin-tick-3.lua's `backend`
    decision: 'breaker_open' | 'call' | 'probe' (begin_breaker in includes/backend.lua)
]]
--- @include "backend"
return cjson.encode(begin_breaker(KEYS[1], cjson.decode(ARGV[1])))
