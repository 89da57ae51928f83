--[[
  The backend half of a tick: the backend's circuit breaker and learned method, one hash per
  backend (<prefix>:backend:<backendId>, in a hash slot of its own on a Cluster), so that every
  worker of the cluster shares one breaker per backend. Every transition happens here,
  atomically; the reply names the transition a call made, so only that worker logs it.
  Field names: BACKEND_FIELDS in packages/shared (a test keeps them in step).
]]

--[[
  begin_breaker(bk, t): decides, against the backend's breaker, whether this tick calls the backend.
  `t` is the begin input (BeginRecord in src/store/scripts.ts); it reads now, probeToken,
  probeLeaseMs, pingRetryDelayMs and fallback (the backend may switch between ping and its tool).
  Returns the begin reply's `backend`: { decision, breaker, method, pingRetry }
    decision: 'breaker_open' | 'call' | 'probe'
    'probe': this tick claimed the backend's one probe (state -> probing, with probeToken, lease
      until now + probeLeaseMs).
    breaker: the breaker state read ('closed' | 'open' | 'probing'); method: 'ping' | 'tool'
    pingRetry = true: this tick claimed the ping retry of a backend that learned its tool (the
      next retry is pushed out by pingRetryDelayMs), so one worker in the cluster retries ping per
      window.
]]
local function begin_breaker(bk, t)
  local now = t.now
  local b = redis.call('HMGET', bk, 'state', 'probeAt', 'probeUntil', 'method', 'pingRetryAt')
  local state = b[1] or 'closed'
  local decision = 'call'
  local function claim()
    redis.call('HSET', bk, 'state', 'probing', 'probeToken', t.probeToken, 'probeUntil', now + t.probeLeaseMs)
    decision = 'probe'
  end
  if state == 'open' then
    if now >= tonumber(b[2] or '0') then claim() else decision = 'breaker_open' end
  elseif state == 'probing' then
    -- A claim whose lease ran out belongs to a worker that died mid-probe: take it over.
    if now >= tonumber(b[3] or '0') then claim() else decision = 'breaker_open' end
  end
  local method = b[4] or 'ping'
  local pingRetry = false
  if decision ~= 'breaker_open' and t.fallback and method == 'tool' and now >= tonumber(b[5] or '0') then
    redis.call('HSET', bk, 'pingRetryAt', now + t.pingRetryDelayMs)
    pingRetry = true
  end
  return {decision = decision, breaker = state, method = method, pingRetry = pingRetry}
end

--[[
  finish_breaker(bk, t): the breaker and fallback accounting of the finish input `t` (FinishRecord
  in src/store/scripts.ts).
  Returns the finish reply's `backend`: { breakerTransition, breakerFailures, methodTransition }
    breakerTransition: absent | 'opened' | 'closed' | 'reopened' | 'released' (a probe whose pair
      gave no verdict, session_not_found, hands the probe back, due at once)
    breakerFailures: the backend's consecutive failures after this tick
    methodTransition: absent | 'to_tool' | 'to_ping'
]]
local function finish_breaker(bk, t)
  local now = t.now
  local b = redis.call('HMGET', bk, 'state', 'probeToken', 'fails')
  local state = b[1] or 'closed'
  local bt, bfails = nil, tonumber(b[3] or '0')
  if t.probeToken and state == 'probing' and b[2] == t.probeToken then
    redis.call('HDEL', bk, 'probeToken', 'probeUntil')
    if t.breakerOp == 'reset' then
      redis.call('HSET', bk, 'state', 'closed', 'fails', 0)
      redis.call('HDEL', bk, 'probeAt', 'reason', 'openedAt', 'failSince')
      bt, bfails = 'closed', 0
    elseif t.breakerOp == 'count' then
      redis.call('HSET', bk, 'state', 'open', 'probeAt', now + t.probeDelayMs, 'reason', t.reason)
      bfails = redis.call('HINCRBY', bk, 'fails', 1)
      bt = 'reopened'
    else
      redis.call('HSET', bk, 'state', 'open', 'probeAt', now)
      bt = 'released'
    end
  elseif state == 'closed' then
    if t.breakerOp == 'reset' then
      if bfails ~= 0 then
        redis.call('HSET', bk, 'fails', 0)
        redis.call('HDEL', bk, 'failSince')
      end
      bfails = 0
    elseif t.breakerOp == 'count' then
      bfails = redis.call('HINCRBY', bk, 'fails', 1)
      -- The run of failures began at its first failure; it must both reach the threshold and
      -- span minFailureSpanMs with no success in between (a blip never opens the breaker).
      local since = tonumber(redis.call('HGET', bk, 'failSince') or '')
      if not since then
        since = now
        redis.call('HSET', bk, 'failSince', now)
      end
      if bfails >= t.failureThreshold and now - since >= t.minFailureSpanMs then
        redis.call('HSET', bk, 'state', 'open', 'reason', t.reason, 'openedAt', now, 'probeAt', now + t.probeDelayMs)
        redis.call('HDEL', bk, 'failSince')
        bt = 'opened'
      end
    end
  end
  -- Open, or probing by another tick: the late result of a call that started before the breaker
  -- opened changes nothing; only the probe decides.
  local mop, mt = t.methodOp, nil
  if mop then
    local m = redis.call('HMGET', bk, 'method', 'pingFails')
    local pf = tonumber(m[2] or '0')
    if mop == 'ping_ok' then
      if m[1] == 'tool' then
        redis.call('HDEL', bk, 'method', 'methodAt', 'methodReason', 'pingRetryAt')
        mt = 'to_ping'
      end
      if pf ~= 0 then redis.call('HSET', bk, 'pingFails', 0) end
    elseif mop == 'ping_failed_tool_ok' and m[1] ~= 'tool' then
      -- (The ping retry of a backend already on its tool failed: it simply stays on the tool.)
      pf = redis.call('HINCRBY', bk, 'pingFails', 1)
      if pf >= t.afterFailures then
        redis.call('HSET', bk, 'method', 'tool', 'methodAt', now, 'methodReason', 'ping_failures',
          'pingRetryAt', now + t.pingRetryDelayMs, 'pingFails', 0)
        mt = 'to_tool'
      end
    elseif mop == 'ping_unsupported' then
      if m[1] ~= 'tool' then
        redis.call('HSET', bk, 'method', 'tool', 'methodAt', now, 'methodReason', 'method_not_found',
          'pingRetryAt', now + t.pingRetryDelayMs)
        mt = 'to_tool'
      end
      redis.call('HSET', bk, 'pingFails', 0)
    end
  end
  return {breakerTransition = bt, breakerFailures = bfails, methodTransition = mt}
end
