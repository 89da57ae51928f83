--[[
  The backend half of a tick's finish on a Redis Cluster, in the backend's own hash slot: breaker
  and fallback accounting, cluster-wide.
  Input:
    KEYS[1] backend hash   <prefix>:backend:{<backendId>}
    ARGV[1] the finish record, JSON (as finish-tick-3.lua)
  Output: { breakerTransition, breakerFailures, methodTransition } (finish_breaker in includes/backend.lua)
]]
--- @include "backend"
return finish_breaker(KEYS[1], cjson.decode(ARGV[1]))
