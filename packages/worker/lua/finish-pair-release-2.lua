--[[
  The pair half of a tick's finish, releasing the pair lock taken by begin-pair-locked-2.lua.
  Input:
    KEYS[1] pair hash, KEYS[2] pair lock (as begin-pair-locked-2.lua)
    ARGV[1] the finish record, JSON (as finish-pair-1.lua)
    ARGV[2] tick token: the lock is deleted only while this token holds it
  Output: as finish-pair-1.lua
]]
--- @include "record-pair"
--- @include "release-lock"
local r = record_pair(KEYS[1], cjson.decode(ARGV[1]))
release_lock(KEYS[2], ARGV[2])
return r
