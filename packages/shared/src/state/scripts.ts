import { LuaScript } from "../redis/lua-script.js";

/*
 * Session/pair state transitions. Each is one atomic script so that any number of scheduler and
 * worker processes can apply messages and outcomes concurrently. Keys other than KEYS[] are
 * built from the same prefix (as BullMQ's own scripts do), so a hash-tagged prefix keeps every
 * key in one Redis Cluster slot.
 */

/** Shared helper: expiry = min(now + ttl, createdAt + maxLifetime). */
const EXPIRY = `
local function expiry(now, ttl, created, maxLife)
  local e = now + ttl
  if maxLife and created + maxLife < e then e = created + maxLife end
  return e
end
`;

/**
 * KEYS: session, sessionBackends, sessionsByExpiry
 * ARGV: sessionId, sequence, now, replicaId, ttlMs, maxLifetimeMs|'', pairKeyPrefix, n,
 *       then n × (backendId, backendSessionId|'', protocolVersion|'', status, offReason|'')
 * Returns { 'applied'|'stale'|'ended', removedBackendId... }
 */
export const APPLY_REGISTERED = new LuaScript(`${EXPIRY}
local sessionKey, backendsKey, zkey = KEYS[1], KEYS[2], KEYS[3]
local sid, seq, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HGET', sessionKey, 'state')
if state == 'ended' then return {'ended'} end
-- A registration is stale only against the last APPLIED REGISTRATION ('regSeq'), not against a
-- touch: touch(4) overtaking registered(3) must not discard the newer backend list of
-- registered(3) (found by the shuffled-lifecycle test). 'seq' is the highest sequence applied.
local s = redis.call('HMGET', sessionKey, 'regSeq', 'seq')
local regSeq = tonumber(s[1] or s[2] or '-1')
if regSeq >= seq then return {'stale'} end
local maxSeq = math.max(tonumber(s[2] or '-1'), seq)
local created = tonumber(redis.call('HGET', sessionKey, 'createdAt') or ARGV[3])
local ttl = tonumber(ARGV[5])
local maxLife = tonumber(ARGV[6])
local expires = expiry(now, ttl, created, maxLife)
redis.call('HSET', sessionKey, 'sid', sid, 'seq', maxSeq, 'regSeq', seq, 'state', 'active', 'replica', ARGV[4], 'ttl', ttl,
  'createdAt', created, 'activeAt', now, 'expiresAt', expires)
if maxLife then redis.call('HSET', sessionKey, 'maxLife', maxLife) else redis.call('HDEL', sessionKey, 'maxLife') end
redis.call('ZADD', zkey, expires, sid)
local pairPrefix, n = ARGV[7], tonumber(ARGV[8])
local keep = {}
for i = 0, n - 1 do
  local base = 9 + i * 5
  local bid, bsid, pv, status, off = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
  keep[bid] = true
  local pk = pairPrefix .. bid
  local old = redis.call('HMGET', pk, 'bsid', 'status')
  if old[1] == false or old[1] ~= bsid then
    redis.call('HINCRBY', pk, 'epoch', 1)
    redis.call('HDEL', pk, 'last', 'lastAt', 'okAt', 'failAt', 'failReason', 'latMs')
    redis.call('HSET', pk, 'fails', 0, 'regAt', now)
  elseif old[2] == 'expired' then
    -- Same backend session as the one that already answered 404: it stays expired.
    status = 'expired'
  end
  redis.call('HSET', pk, 'sid', sid, 'bid', bid, 'bsid', bsid, 'pv', pv, 'status', status, 'off', off)
  redis.call('SADD', backendsKey, bid)
end
local result = {'applied'}
for _, bid in ipairs(redis.call('SMEMBERS', backendsKey)) do
  if not keep[bid] then
    redis.call('DEL', pairPrefix .. bid)
    redis.call('SREM', backendsKey, bid)
    table.insert(result, bid)
  end
end
return result
`);

/**
 * KEYS: session, sessionsByExpiry
 * ARGV: sessionId, sequence, now
 * Returns 'applied' | 'stale' | 'ended' | 'unknown'. An unknown session records nothing, so a
 * touch that overtakes its registration cannot make the registration look stale.
 */
export const APPLY_TOUCHED = new LuaScript(`${EXPIRY}
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
`);

/**
 * Ends a session: terminal whatever the sequence. Deletes its pairs and leaves a tombstone
 * (state=ended, TTL ARGV[5]) so a late or duplicated `session.registered` cannot resurrect it.
 * KEYS: session, sessionBackends, sessionsByExpiry
 * ARGV: sessionId, sequence, now, pairKeyPrefix, tombstoneMs, reason
 * Returns { 'applied'|'stale', backendId... }
 */
export const APPLY_ENDED = new LuaScript(`
local sessionKey, backendsKey, zkey = KEYS[1], KEYS[2], KEYS[3]
local sid, seq, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', sessionKey, 'state', 'seq')
if s[1] == 'ended' then return {'stale'} end
local result = {'applied'}
for _, bid in ipairs(redis.call('SMEMBERS', backendsKey)) do
  redis.call('DEL', ARGV[4] .. bid)
  table.insert(result, bid)
end
redis.call('DEL', backendsKey, sessionKey)
redis.call('ZREM', zkey, sid)
local cur = tonumber(s[2] or '-1')
redis.call('HSET', sessionKey, 'sid', sid, 'state', 'ended', 'seq', math.max(cur, seq), 'endedAt', now, 'endReason', ARGV[6])
redis.call('PEXPIRE', sessionKey, tonumber(ARGV[5]))
return result
`);

/**
 * Lua function `record_pair(pk, epoch, now, kind, reason, latencyMs, label, status)`: records one
 * keepalive outcome on a pair, fenced on the epoch the worker read under its lock, so a worker
 * whose lock expired mid-call cannot overwrite state written after a re-initialize. Returns
 * consecutive failures after the write, -1 when fenced (epoch moved), -2 when the pair is gone.
 * Shared by RECORD_OUTCOME and the breaker's FINISH_TICK (one round trip per keepalive).
 */
export const RECORD_PAIR_LUA = `
local function record_pair(pk, epochArg, now, kind, reason, latMs, label, status)
  local epoch = redis.call('HGET', pk, 'epoch')
  if not epoch then return -2 end
  if tonumber(epoch) ~= tonumber(epochArg) then return -1 end
  redis.call('HSET', pk, 'lastAt', now, 'last', label)
  if latMs ~= '' then redis.call('HSET', pk, 'latMs', latMs) end
  if status ~= '' then redis.call('HSET', pk, 'status', status) end
  if kind == 'success' then
    redis.call('HSET', pk, 'okAt', now, 'fails', 0)
    return 0
  elseif kind == 'failure' then
    redis.call('HSET', pk, 'failAt', now, 'failReason', reason)
    return redis.call('HINCRBY', pk, 'fails', 1)
  end
  return tonumber(redis.call('HGET', pk, 'fails') or '0')
end
`;

/**
 * Records one keepalive outcome on a pair (see RECORD_PAIR_LUA).
 * KEYS: pair
 * ARGV: epoch, now, kind ('success'|'failure'|'skipped'), reason|'', latencyMs|'', label, newStatus|''
 * Returns consecutive failures after the write, -1 when fenced (epoch moved), -2 when the pair is gone.
 */
export const RECORD_OUTCOME = new LuaScript(`${RECORD_PAIR_LUA}
return record_pair(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
`);

/**
 * Stores a backend session the vMCP has just re-initialized (run by `reinitializeBackend` while it
 * holds the pair lock): new backend session id and protocol version, epoch + 1 (so every write of
 * a worker that read the old state is fenced out), failure fields reset, and an `expired` pair
 * (the old session answered 404 and the worker removed its job scheduler) back to `active`. An
 * `off` pair stays off: the keepalive policy is decided at registration, by the scheduler.
 * Never creates a pair: a session that ended (or was reaped) stays ended.
 * KEYS: pair
 * ARGV: backendSessionId, protocolVersion|'', now
 * Returns { 'applied', newEpoch, previousStatus } | { 'unknown' }
 */
export const REINITIALIZE_PAIR = new LuaScript(`
local pk = KEYS[1]
local old = redis.call('HMGET', pk, 'sid', 'status')
if old[1] == false then return {'unknown'} end
local previous = old[2] or 'active'
local status = previous
if previous == 'expired' then status = 'active' end
local epoch = redis.call('HINCRBY', pk, 'epoch', 1)
redis.call('HDEL', pk, 'last', 'lastAt', 'okAt', 'failAt', 'failReason', 'latMs')
redis.call('HSET', pk, 'bsid', ARGV[1], 'pv', ARGV[2], 'status', status, 'fails', 0, 'regAt', ARGV[3])
return {'applied', epoch, previous}
`);

/**
 * Ends a session whose expiry has passed (the reaper): the same effect as APPLY_ENDED with reason
 * `expired`, but only if the session's score in the expiry index is still <= now, checked in the
 * same atomic step — a touch applied a moment earlier keeps the session alive, and of several
 * schedulers reaping at once exactly one gets 'applied' (the others see it gone).
 * KEYS: session, sessionBackends, sessionsByExpiry
 * ARGV: sessionId, now, pairKeyPrefix, tombstoneMs
 * Returns { 'applied', backendId... } | { 'alive' } | { 'gone' }
 */
export const REAP_SESSION = new LuaScript(`
local sessionKey, backendsKey, zkey = KEYS[1], KEYS[2], KEYS[3]
local sid, now = ARGV[1], tonumber(ARGV[2])
local score = redis.call('ZSCORE', zkey, sid)
if not score then return {'gone'} end
if tonumber(score) > now then return {'alive'} end
local result = {'applied'}
for _, bid in ipairs(redis.call('SMEMBERS', backendsKey)) do
  redis.call('DEL', ARGV[3] .. bid)
  table.insert(result, bid)
end
local seq = redis.call('HGET', sessionKey, 'seq') or '0'
redis.call('DEL', backendsKey, sessionKey)
redis.call('ZREM', zkey, sid)
redis.call('HSET', sessionKey, 'sid', sid, 'state', 'ended', 'seq', seq, 'endedAt', now, 'endReason', 'expired')
redis.call('PEXPIRE', sessionKey, tonumber(ARGV[4]))
return result
`);
