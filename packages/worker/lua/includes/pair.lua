--[[
  The pair half of a tick: the pair lock, the start decision on the pair, the outcome record.
  Field names: PAIR_FIELDS in packages/shared (a test keeps them in step).

  The pair lock is the contract resource <shard prefix>:lock:<sessionId>:<backendId>, taken with
  SET NX PX and a random token and released by compare-and-delete, exactly as a one-node Redlock
  does, so it excludes and is excluded by a vMCP's reinitializeBackend on the same resource. The
  tick's scripts take it themselves when the lock lives on the main Redis (their input carries
  `lock`: { token, ttlMs }); with a Redlock quorum over lock.redis_urls the worker holds it before
  the scripts run, and their input carries no `lock`: they leave the lock key alone.
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

-- take_lock(key, lock): true when the tick has the lock. `lock` is the input's { token, ttlMs }
-- when the scripts hold the lock; absent, the lock is held outside the scripts (a Redlock quorum).
local function take_lock(key, lock)
  if not lock then return true end
  return redis.call('SET', key, lock.token, 'NX', 'PX', lock.ttlMs) ~= false
end

-- keep_lock(key, lock, step): applies KEEPS_LOCK after a step (a start decision, or 'stopped' /
-- 'finished'). Returns the reply's `lock`: 'kept' (the script's lock stays held for the worker's
-- remaining work), 'released' (deleted here), or 'none' (the scripts hold no lock: it is held
-- outside them, or its TTL ran out and it may be someone else's). The worker acts on it in one
-- place (src/tick/tick-lock.ts).
local function keep_lock(key, lock, step)
  if not lock or redis.call('GET', key) ~= lock.token then return 'none' end
  if KEEPS_LOCK[step] then return 'kept' end
  redis.call('DEL', key)
  return 'released'
end

--[[
  begin_pair(pk, t): reads the pair and decides whether the tick goes on to the backend's breaker.
  `t` is the begin input (BeginRecord in src/store/scripts.ts); it reads:
    now
    trafficWindowMs      a pair that carried traffic less than this long ago is skipped; 0 = never
    credentialsMarginMs  for an `auth: session` backend, the call timeout: credentials that
                         expire within it are not used; absent for other backends (their pairs'
                         credentials are not checked)
    refreshBeforeMs      `credentials.refresh_before`, 0 when unset
  Returns { decision, pair, notice } (the begin reply's fields of the same names):
    decision: 'ended' (no pair: the session ended or was reaped) | 'disabled' (off, expired, or
      no backend session) | 'credentials_expired' (recorded as `skipped:credentials_expired`) |
      'recent_traffic' (recorded as `skipped:recent_traffic`) | 'go'
    pair: the pair hash as read (field -> value), absent when there is no pair
    notice: absent | 'expiring' | 'expired' — the credentials notice this tick publishes: each
      one once per credentials (`credNote`; new credentials clear it).
]]
local function begin_pair(pk, t)
  local now = t.now
  local flat = redis.call('HGETALL', pk)
  if #flat == 0 then return {decision = 'ended'} end
  -- The fields this decision needs, from the HGETALL above (not read a second time).
  local f = {}
  for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
  if (f.status and f.status ~= 'active') or not f.bsid or f.bsid == '' then return {decision = 'disabled', pair = f} end
  local notice
  local margin = t.credentialsMarginMs
  if margin and f.credExp then
    local exp = tonumber(f.credExp)
    if now + margin >= exp then
      if f.credNote ~= 'expired' then
        redis.call('HSET', pk, 'credNote', 'expired')
        notice = 'expired'
      end
      redis.call('HSET', pk, 'lastAt', now, 'last', 'skipped:credentials_expired')
      return {decision = 'credentials_expired', pair = f, notice = notice}
    end
    local refreshBefore = t.refreshBeforeMs
    if refreshBefore > 0 and now + refreshBefore >= exp and not f.credNote then
      redis.call('HSET', pk, 'credNote', 'expiring')
      notice = 'expiring'
    end
  end
  local window = t.trafficWindowMs
  if window > 0 and f.trafficAt and now - tonumber(f.trafficAt) < window then
    redis.call('HSET', pk, 'lastAt', now, 'last', 'skipped:recent_traffic')
    return {decision = 'recent_traffic', pair = f, notice = notice}
  end
  return {decision = 'go', pair = f, notice = notice}
end

--[[
  record_pair(pk, t): records one keepalive outcome on a pair, fenced on the epoch the worker read
  under its lock, so a worker whose lock expired mid-call cannot overwrite state written after a
  re-initialize. `t` is the finish input (FinishRecord in src/store/scripts.ts); kind
  'skipped' records only `lastAt` and `last` (a tick that made no call) — and its stop, if any.
  `t.stop` ({ off, credSeq }) turns keepalive off for the pair's credentials, fenced also on the
  credentials the worker read (`credSeq`, -1 for none): newer ones that came meanwhile win.
  Returns { record, stopped } (the finish reply's fields of the same names):
    record: 'recorded' | 'fenced' (the epoch moved on) | 'gone' (no pair)
    stopped: true when this write stopped the pair (expired, or off for its credentials)
]]
local function record_pair(pk, t)
  local epoch = redis.call('HGET', pk, 'epoch')
  if not epoch then return {record = 'gone', stopped = false} end
  if tonumber(epoch) ~= t.epoch then return {record = 'fenced', stopped = false} end
  redis.call('HSET', pk, 'lastAt', t.now, 'last', t.label)
  local stopped = false
  if t.stop and tonumber(redis.call('HGET', pk, 'credSeq') or '-1') == t.stop.credSeq then
    redis.call('HSET', pk, 'status', 'off', 'off', t.stop.off)
    stopped = true
  end
  if t.kind == 'skipped' then return {record = 'recorded', stopped = stopped} end
  if t.latencyMs then redis.call('HSET', pk, 'latMs', t.latencyMs) end
  if t.pairStatus then
    redis.call('HSET', pk, 'status', t.pairStatus)
    stopped = true
  end
  if t.kind == 'success' then
    redis.call('HSET', pk, 'okAt', t.now)
    redis.call('HDEL', pk, 'fails')
  else
    redis.call('HSET', pk, 'failAt', t.now, 'failReason', t.reason)
    redis.call('HINCRBY', pk, 'fails', 1)
  end
  return {record = 'recorded', stopped = stopped}
end
