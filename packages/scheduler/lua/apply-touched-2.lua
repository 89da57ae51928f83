--[[
  Applies `session.touched`: slides the session's expiry.
  Input:
    KEYS[1] session hash, KEYS[2] sessions by expiry
    ARGV[1] sessionId    ARGV[2] sequence    ARGV[3] now (ms)
  Output: 'applied' | 'stale' | 'ended' | 'unknown'. An unknown session records nothing, so a
    touch that overtakes its registration cannot make the registration look stale.
]]
--- @include "expiry"
local sessionKey, zkey = KEYS[1], KEYS[2]
local sid, seq, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', sessionKey, 'state', 'seq', 'ttl', 'createdAt', 'maxLife')
if s[1] == false then return 'unknown' end
if s[1] == 'ended' then return 'ended' end
if tonumber(s[2]) >= seq then return 'stale' end
local expires = expiry(now, tonumber(s[3]), tonumber(s[4]), tonumber(s[5]))
redis.call('HSET', sessionKey, 'seq', seq, 'activeAt', now, 'expiresAt', expires)
redis.call('ZADD', zkey, expires, sid)
return 'applied'
