--[[
  Applies `session.registered`: the session's TTLs and expiry, and one pair hash per backend with
  the status the scheduler decided; a session new here counts in its shard's live-session count.
  A pair whose backend session id changed gets epoch + 1 and its outcome fields reset; backends no
  longer listed lose their pair.
  Input:
    KEYS[1] session hash            <shard prefix>:session:<sessionId>
    KEYS[2] live-session count      <shard prefix>:session-count
    ARGV[1] sessionId    ARGV[2] sequence    ARGV[3] now (ms)
    ARGV[4] ttlMs        ARGV[5] maxLifetimeMs or ''
    ARGV[6] pair key prefix (<shard prefix>:pair:<sessionId>:)
    ARGV[7] n, then n x (backendId, backendSessionId|'', protocolVersion|'', status, offReason|'',
      credentials|'' (sealed envelope JSON), credentials expiresAt|'', needsCredentials '1'|'0')
  Output: { 'applied', {removedBackendId...}, {activeBackendId...}, {offBackendId, offReason, ...} }
    | { 'duplicate', {}, {activeBackendId...}, {} } | { 'stale' } | { 'ended' }
    'duplicate': this very registration was applied before (a redelivery after a crash between
    this write and the job-scheduler upserts); nothing is written, and the pairs that are active
    now are listed so that the caller completes the side effects the first delivery may not have.
    A pair decided active can end up off here: an `auth: session` pair with no credentials stored
    (`no_credentials`), or one a worker stopped for its credentials that brings none new.
]]
--- @include "expiry"
--- @include "session-backends"
--- @include "credentials"
local sessionKey, countKey = KEYS[1], KEYS[2]
local seq, now = tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HGET', sessionKey, 'state')
if state == 'ended' then return {'ended'} end
-- A registration is stale only against the last applied REGISTRATION ('regSeq'), not against a
-- touch: touch(4) overtaking registered(3) must not discard the newer backend list of
-- registered(3). 'seq' is the highest sequence applied.
local s = redis.call('HMGET', sessionKey, 'regSeq', 'seq', 'createdAt')
local regSeq = tonumber(s[1] or s[2] or '-1')
local pairPrefix = ARGV[6]
if regSeq == seq and s[1] then
  local active = {}
  for _, bid in ipairs(session_backends(sessionKey)) do
    local p = redis.call('HMGET', pairPrefix .. bid, 'status', 'bsid')
    if (p[1] or 'active') == 'active' and p[2] and p[2] ~= '' then table.insert(active, bid) end
  end
  return {'duplicate', {}, active, {}}
end
if regSeq >= seq then return {'stale'} end
local maxSeq = math.max(tonumber(s[2] or '-1'), seq)
-- A live session's hash holds only what its expiry needs (bytes per pair): no `state` (absent =
-- active), and `createdAt` only beside a maximum lifetime, the one thing it bounds.
local created = tonumber(s[3] or ARGV[3])
local ttl = tonumber(ARGV[4])
local maxLife = tonumber(ARGV[5])
local expires = expiry(now, ttl, created, maxLife)
local before = session_backends(sessionKey)
if s[2] == false then redis.call('INCR', countKey) end
redis.call('HSET', sessionKey, 'seq', maxSeq, 'regSeq', seq, 'ttl', ttl, 'expiresAt', expires)
if maxLife then redis.call('HSET', sessionKey, 'maxLife', maxLife, 'createdAt', created) else redis.call('HDEL', sessionKey, 'maxLife', 'createdAt') end
local n = tonumber(ARGV[7])
local keep = {}
local active, offs = {}, {}
for i = 0, n - 1 do
  local base = 8 + i * 8
  local bid, bsid, pv, status, off = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
  keep[bid] = true
  local pk = pairPrefix .. bid
  local old = redis.call('HMGET', pk, 'bsid', 'status', 'off')
  local fresh = store_credentials(pk, seq, ARGV[base + 5], ARGV[base + 6])
  if status == 'active' and old[2] == 'off' and CREDENTIAL_OFF[old[3]] and old[3] ~= 'no_credentials' and not fresh then
    -- A worker stopped this pair for its credentials; only new ones bring it back.
    status, off = 'off', old[3]
  elseif status == 'active' and ARGV[base + 7] == '1' and redis.call('HEXISTS', pk, 'cred') == 0 then
    status, off = 'off', 'no_credentials'
  end
  if old[1] == false or old[1] ~= bsid then
    redis.call('HINCRBY', pk, 'epoch', 1)
    redis.call('HDEL', pk, 'last', 'lastAt', 'okAt', 'failAt', 'failReason', 'latMs')
    redis.call('HDEL', pk, 'fails')
    redis.call('HSET', pk, 'regAt', now)
  elseif old[2] == 'expired' then
    -- Same backend session as the one that already answered 404: it stays expired.
    status, off = 'expired', ''
  end
  -- Fields at their default are left out (status active, no off reason, 0 failures): bytes per pair.
  redis.call('HSET', pk, 'bsid', bsid, 'pv', pv)
  if status == 'active' then redis.call('HDEL', pk, 'status') else redis.call('HSET', pk, 'status', status) end
  if off == '' then redis.call('HDEL', pk, 'off') else redis.call('HSET', pk, 'off', off) end
  redis.call('HSET', sessionKey, 'b:' .. bid, '')
  if status == 'active' and bsid ~= '' then table.insert(active, bid)
  elseif status == 'off' then table.insert(offs, bid); table.insert(offs, off) end
end
local removed = {}
for _, bid in ipairs(before) do
  if not keep[bid] then
    redis.call('DEL', pairPrefix .. bid)
    redis.call('HDEL', sessionKey, 'b:' .. bid)
    table.insert(removed, bid)
  end
end
return {'applied', removed, active, offs}
