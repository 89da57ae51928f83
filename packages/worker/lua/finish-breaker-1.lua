--[[
  The backend half of a tick's finish on a Redis Cluster, in the backend's own hash slot: breaker
  and fallback accounting, cluster-wide.
  Input:
    KEYS[1] backend hash   <prefix>:backend:{<backendId>}
    ARGV[1] the finish input, JSON, as finish-tick-3.lua
  Output: JSON { breakerTransition, breakerFailures, methodTransition }: finish-tick-3.lua's
    `backend` (finish_breaker in includes/backend.lua)
]]
--- @include "backend"
return cjson.encode(finish_breaker(KEYS[1], cjson.decode(ARGV[1])))
