--[[
  Ends a session whose expiry has passed (the reaper): the effect of apply-ended-2.lua with reason
  `expired`, but only if the session's score in the expiry index is still <= now, checked in the
  same atomic step: a touch applied a moment earlier keeps the session alive, and of several
  schedulers reaping at once exactly one gets 'applied' (the others see it gone).
  Input:
    KEYS[1] session hash, KEYS[2] sessions by expiry
    ARGV[1] sessionId    ARGV[2] now (ms)    ARGV[3] pair key prefix    ARGV[4] tombstone TTL (ms)
  Output: { 'applied', backendId... } | { 'alive' } | { 'gone' }
]]
--- @include "end-session"
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score then return {'gone'} end
if tonumber(score) > tonumber(ARGV[2]) then return {'alive'} end
local seq = redis.call('HGET', KEYS[1], 'seq') or '0'
return end_session(KEYS[1], KEYS[2], ARGV[1], ARGV[3], seq, tonumber(ARGV[2]), 'expired', tonumber(ARGV[4]))
