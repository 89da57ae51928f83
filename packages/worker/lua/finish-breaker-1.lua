--[[
  The backend half of a tick's finish, in the backend's own hash slot: breaker and fallback
  accounting, cluster-wide.
  Input:
    KEYS[1] backend hash   <prefix>:backend:{<backendId>}
    ARGV[1] the finish record, JSON (as finish-tick-2.lua)
  Output: see includes/finish-breaker.lua
]]
--- @include "finish-breaker"
return finish_breaker(KEYS[1], cjson.decode(ARGV[1]))
