--[[
  Finishes a tick and releases the pair lock it took in begin-tick-locked-3.lua (one lock node).
  Input:
    KEYS[1] pair hash, KEYS[2] backend hash (as finish-tick-2.lua)
    KEYS[3] pair lock   <prefix>:lock:<sessionId>:<backendId>
    ARGV[1] the finish record, JSON (as finish-tick-2.lua)
    ARGV[2] tick token: the lock is deleted only while this token holds it
  Output: see includes/finish-tick.lua
]]
--- @include "finish-tick"
--- @include "release-lock"
local r = finish_tick(KEYS[1], KEYS[2], cjson.decode(ARGV[1]))
release_lock(KEYS[3], ARGV[2])
return r
