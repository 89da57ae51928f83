--[[
  Releases a pair lock taken by begin-tick-locked-3.lua, if the tick's token still holds it.
  Input:
    KEYS[1] pair lock   <prefix>:lock:<sessionId>:<backendId>
    ARGV[1] tick token
  Output: 1 when released, 0 when the lock had expired or belongs to someone else.
]]
--- @include "release-lock"
return release_lock(KEYS[1], ARGV[1])
