--[[
  The pair half of a tick: the pair lock, the start decision on the pair, the outcome record.
  Field names: PAIR_FIELDS in packages/shared (a test keeps them in step).

  The pair lock is the contract resource <prefix>:lock:<sessionId>:<backendId>, taken with
  SET NX PX and a random token and released by compare-and-delete, exactly as a one-node Redlock
  does, so it excludes and is excluded by a vMCP's reinitializeBackend on the same resource. The
  tick's scripts take it themselves when the lock lives on the main Redis (lock TTL > 0); with a
  Redlock quorum over lock.redis_urls the worker holds it before the scripts run (lock TTL 0).
]]

-- The one rule for the lock: after each step of a tick, the script's lock stays held only when
-- the worker still has work to do under it — after the start, the backend call and its record
-- ('call', 'probe'; on a Cluster 'go', where the backend half decides next) or the removal of an
-- inactive pair's job scheduler ('disabled'); after the finish, the removal of the job scheduler
-- of a pair it stopped ('stopped': its backend session gone, or keepalive off for its
-- credentials). Held that long, no re-initialize or new credentials can bring the pair back in
-- between. Every other step ends the tick's work under the lock, and the script that made it
-- releases the lock.
local KEEPS_LOCK = { go = true, call = true, probe = true, disabled = true, stopped = true }

-- take_lock(key, token, ttl): true when the lock is ours; ttl 0: held outside the scripts.
local function take_lock(key, token, ttl)
  if ttl == 0 then return true end
  return redis.call('SET', key, token, 'NX', 'PX', ttl) ~= false
end

-- release_lock(key, token): compare-and-delete; 1 when deleted, 0 when not ours (or held elsewhere).
local function release_lock(key, token)
  if redis.call('GET', key) == token then return redis.call('DEL', key) end
  return 0
end

-- keep_lock(key, token, step): applies KEEPS_LOCK after a step (a start decision, or 'stopped' /
-- 'finished'). Returns 1 when the script's lock stays held, 0 when it was released here or is
-- not the script's (held outside the scripts, or expired and taken by someone else).
local function keep_lock(key, token, step)
  if redis.call('GET', key) ~= token then return 0 end
  if KEEPS_LOCK[step] then return 1 end
  redis.call('DEL', key)
  return 0
end

--[[
  begin_pair(pk, now, trafficWindow, credMargin, refreshBefore): reads the pair and decides
  whether the tick goes on to the backend's breaker.
  credMargin: for an `auth: session` backend, the call timeout (ms): credentials that expire
  within it are not used; -1 for other backends (their pairs' credentials are not checked).
  refreshBefore: `credentials.refresh_before` (ms), 0 when unset.
  Returns { decision, pairHashFlat, notice }
    decision: 'ended' (no pair: the session ended or was reaped) | 'disabled' (off, expired, or
      no backend session) | 'credentials_expired' (recorded as `skipped:credentials_expired`) |
      'recent_traffic' (traffic less than trafficWindow ms ago; recorded as
      `skipped:recent_traffic`) | 'go'
    notice: '' | 'expiring' | 'expired' — the credentials notice this tick publishes: each one
      once per credentials (`credNote`; new credentials clear it).
]]
local function begin_pair(pk, now, trafficWindow, credMargin, refreshBefore)
  local pair = redis.call('HGETALL', pk)
  if #pair == 0 then return {'ended', pair, ''} end
  -- The fields this decision needs, from the HGETALL above (not read a second time).
  local f = {}
  for i = 1, #pair, 2 do f[pair[i]] = pair[i + 1] end
  if (f.status and f.status ~= 'active') or not f.bsid or f.bsid == '' then return {'disabled', pair, ''} end
  local notice = ''
  if credMargin >= 0 and f.credExp then
    local exp = tonumber(f.credExp)
    if now + credMargin >= exp then
      if f.credNote ~= 'expired' then
        redis.call('HSET', pk, 'credNote', 'expired')
        notice = 'expired'
      end
      redis.call('HSET', pk, 'lastAt', now, 'last', 'skipped:credentials_expired')
      return {'credentials_expired', pair, notice}
    end
    if refreshBefore > 0 and now + refreshBefore >= exp and not f.credNote then
      redis.call('HSET', pk, 'credNote', 'expiring')
      notice = 'expiring'
    end
  end
  if trafficWindow > 0 and f.trafficAt and now - tonumber(f.trafficAt) < trafficWindow then
    redis.call('HSET', pk, 'lastAt', now, 'last', 'skipped:recent_traffic')
    return {'recent_traffic', pair, notice}
  end
  return {'go', pair, notice}
end

--[[
  record_pair(pk, t): records one keepalive outcome on a pair, fenced on the epoch the worker read
  under its lock, so a worker whose lock expired mid-call cannot overwrite state written after a
  re-initialize. `t` is the finish record (FinishRecord in src/store/tick-store.ts); kind
  'skipped' records only `lastAt` and `last` (a tick that made no call) — and its stop, if any.
  `t.stop` ({ off, credSeq }) turns keepalive off for the pair's credentials, fenced also on the
  credentials the worker read (`credSeq`, -1 for none): newer ones that came meanwhile win.
  Returns consecutive failures after the write (-1 when fenced: epoch moved, -2 when the pair is
  gone), and 1 when this write stopped the pair (expired, or off for its credentials), else 0.
]]
local function record_pair(pk, t)
  local epoch = redis.call('HGET', pk, 'epoch')
  if not epoch then return -2, 0 end
  if tonumber(epoch) ~= t.epoch then return -1, 0 end
  redis.call('HSET', pk, 'lastAt', t.now, 'last', t.label)
  local stopped = 0
  if t.stop and tonumber(redis.call('HGET', pk, 'credSeq') or '-1') == t.stop.credSeq then
    redis.call('HSET', pk, 'status', 'off', 'off', t.stop.off)
    stopped = 1
  end
  if t.kind == 'skipped' then return 0, stopped end
  if t.latencyMs then redis.call('HSET', pk, 'latMs', t.latencyMs) end
  if t.pairStatus then
    redis.call('HSET', pk, 'status', t.pairStatus)
    stopped = 1
  end
  if t.kind == 'success' then
    redis.call('HSET', pk, 'okAt', t.now)
    redis.call('HDEL', pk, 'fails')
    return 0, stopped
  end
  redis.call('HSET', pk, 'failAt', t.now, 'failReason', t.reason)
  return redis.call('HINCRBY', pk, 'fails', 1), stopped
end
