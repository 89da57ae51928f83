--[[
  Applies `session.touched` and `session.credentials_updated`. A touch slides the session's
  expiry and records when the backends it names carried traffic (`trafficAt` on their pairs: the
  worker skips a tick whose pair carried traffic within its window). Both store the credentials
  they carry (includes/credentials.lua); a pair that was off for its credentials is active again.
  Input:
    KEYS[1] session hash
    ARGV[1] sessionId    ARGV[2] sequence    ARGV[3] now (ms)
    ARGV[4] pair key prefix (<shard prefix>:pair:<sessionId>:)
    ARGV[5] when the traffic happened (ms, the message's occurredAt, at most now)
    ARGV[6] '1': slide the session's expiry (a touch); '0': do not (a credentials update)
    ARGV[7] n, then n backend ids the session called
    then (backendId, sealed credentials JSON, expiresAt ms|'') triples to the end
  Output: { 'applied', revivedBackendId... } | { 'stale' } | { 'ended' } | { 'unknown' } | { 'unknown_backends', id... }
    revived: pairs that were off for their credentials and are active again (they need their job
    scheduler back).
    'unknown': a session not registered (yet); nothing is recorded, so a touch that overtakes its
    registration cannot make the registration look stale.
    'unknown_backends': it names backends the session did not register; nothing is written.
]]
--- @include "expiry"
--- @include "session-backends"
--- @include "credentials"
local sessionKey = KEYS[1]
local seq, now = tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', sessionKey, 'state', 'seq', 'ttl', 'createdAt', 'maxLife')
if s[1] == 'ended' then return {'ended'} end
if s[2] == false then return {'unknown'} end
local nTraffic = tonumber(ARGV[7])
local traffic, creds = {}, {}
for i = 8, 7 + nTraffic do table.insert(traffic, ARGV[i]) end
for i = 8 + nTraffic, #ARGV, 3 do table.insert(creds, {ARGV[i], ARGV[i + 1], ARGV[i + 2]}) end
local unknown = {'unknown_backends'}
if #traffic + #creds > 0 then
  local registered = {}
  for _, bid in ipairs(session_backends(sessionKey)) do registered[bid] = true end
  for _, bid in ipairs(traffic) do
    if not registered[bid] then table.insert(unknown, bid) end
  end
  for _, c in ipairs(creds) do
    if not registered[c[1]] then table.insert(unknown, c[1]) end
  end
end
if #unknown > 1 then return unknown end
if tonumber(s[2]) >= seq then return {'stale'} end
if ARGV[6] == '1' then
  local expires = expiry(now, tonumber(s[3]), tonumber(s[4]), tonumber(s[5]))
  redis.call('HSET', sessionKey, 'seq', seq, 'expiresAt', expires)
else
  redis.call('HSET', sessionKey, 'seq', seq)
end
local trafficAt = math.min(tonumber(ARGV[5]), now)
for _, bid in ipairs(traffic) do
  local pk = ARGV[4] .. bid
  local last = tonumber(redis.call('HGET', pk, 'trafficAt') or '0')
  if trafficAt > last then redis.call('HSET', pk, 'trafficAt', trafficAt) end
end
local result = {'applied'}
for _, c in ipairs(creds) do
  local pk = ARGV[4] .. c[1]
  if store_credentials(pk, seq, c[2], c[3]) and revive(pk) then table.insert(result, c[1]) end
end
return result
