--[[
  Ends a session whose expiry has passed (the reaper): the effect of apply-ended-2.lua with reason
  `expired`, but only if the session's `expiresAt` is still <= now, checked in the same atomic
  step: a touch applied a moment earlier keeps the session alive, and of several schedulers
  reaping at once exactly one gets 'applied' (the others see it gone).
  Input:
    KEYS[1] session hash, KEYS[2] live-session count
    ARGV[1] sessionId    ARGV[2] now (ms)    ARGV[3] pair key prefix    ARGV[4] tombstone TTL (ms)
  Output: { 'applied', backendId... } | { 'alive' } | { 'gone' }
]]
--- @include "end-session"
local s = redis.call('HMGET', KEYS[1], 'state', 'seq', 'expiresAt')
if s[1] == 'ended' or s[2] == false or s[3] == false then return {'gone'} end
if tonumber(s[3]) > tonumber(ARGV[2]) then return {'alive'} end
return end_session(KEYS[1], KEYS[2], ARGV[3], s[2], tonumber(ARGV[2]), 'expired', tonumber(ARGV[4]))
