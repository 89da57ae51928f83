--[[
  Applies `session.touched`: slides the session's expiry, and records when the backends it names
  carried traffic (`trafficAt` on their pairs: the worker skips a tick whose pair carried traffic
  within its window).
  Input:
    KEYS[1] session hash, KEYS[2] sessions by expiry, KEYS[3] the 0.1.0 layout's session backends set
    ARGV[1] sessionId    ARGV[2] sequence    ARGV[3] now (ms)
    ARGV[4] pair key prefix (<prefix>:pair:<sessionId>:)
    ARGV[5] when the traffic happened (ms, the message's occurredAt, at most now)
    ARGV[6..] backend ids the session called
  Output: { 'applied' } | { 'stale' } | { 'ended' } | { 'unknown' } | { 'unknown_backends', id... }
    'unknown': a session not registered (yet); nothing is recorded, so a touch that overtakes its
    registration cannot make the registration look stale.
    'unknown_backends': it names backends the session did not register; nothing is written.
]]
--- @include "expiry"
--- @include "session-backends"
local sessionKey, zkey, backendsKey = KEYS[1], KEYS[2], KEYS[3]
local sid, seq, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', sessionKey, 'state', 'seq', 'ttl', 'createdAt', 'maxLife')
if s[1] == false then return {'unknown'} end
if s[1] == 'ended' then return {'ended'} end
local unknown = {'unknown_backends'}
if #ARGV >= 6 then
  local registered = {}
  for _, bid in ipairs(session_backends(sessionKey, backendsKey)) do registered[bid] = true end
  for i = 6, #ARGV do
    if not registered[ARGV[i]] then table.insert(unknown, ARGV[i]) end
  end
end
if #unknown > 1 then return unknown end
if tonumber(s[2]) >= seq then return {'stale'} end
local expires = expiry(now, tonumber(s[3]), tonumber(s[4]), tonumber(s[5]))
redis.call('HSET', sessionKey, 'seq', seq, 'activeAt', now, 'expiresAt', expires)
redis.call('ZADD', zkey, expires, sid)
local trafficAt = math.min(tonumber(ARGV[5]), now)
for i = 6, #ARGV do
  local pk = ARGV[4] .. ARGV[i]
  local last = tonumber(redis.call('HGET', pk, 'trafficAt') or '0')
  if trafficAt > last then redis.call('HSET', pk, 'trafficAt', trafficAt) end
end
return {'applied'}
