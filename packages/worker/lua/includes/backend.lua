--[[
  The backend half of a tick: the backend's circuit breaker and learned method, one hash per
  backend (<prefix>:backend:<backendId>, in a hash slot of its own on a Cluster), so that every
  worker of the cluster shares one breaker per backend. Every transition happens here,
  atomically; the reply names the transition a call made, so only that worker logs it.
  Field names: BACKEND_FIELDS in packages/shared (a test keeps them in step).
]]

--[[
  begin_breaker(bk, now, token, lease, pingRetryDelay, fallback): decides, against the backend's
  breaker, whether this tick calls the backend.
  Returns { decision, breakerState, learnedMethod, pingRetry (0|1) }
    decision: 'breaker_open' | 'call' | 'probe'
    'probe': this tick claimed the backend's one probe (state -> probing, lease until now + lease).
    pingRetry = 1: this tick claimed the ping retry of a backend that learned its tool (the next
    retry is pushed out by pingRetryDelay), so one worker in the cluster retries ping per window.
]]
local function begin_breaker(bk, now, token, lease, pingRetryDelay, fallback)
  local b = redis.call('HMGET', bk, 'state', 'probeAt', 'probeUntil', 'method', 'pingRetryAt')
  local state = b[1] or 'closed'
  local decision = 'call'
  local function claim()
    redis.call('HSET', bk, 'state', 'probing', 'probeToken', token, 'probeUntil', now + lease)
    decision = 'probe'
  end
  if state == 'open' then
    if now >= tonumber(b[2] or '0') then claim() else decision = 'breaker_open' end
  elseif state == 'probing' then
    -- A claim whose lease ran out belongs to a worker that died mid-probe: take it over.
    if now >= tonumber(b[3] or '0') then claim() else decision = 'breaker_open' end
  end
  local method = b[4] or 'ping'
  if decision == 'breaker_open' then return {decision, state, method, 0} end
  local pingRetry = 0
  if fallback == '1' and method == 'tool' and now >= tonumber(b[5] or '0') then
    redis.call('HSET', bk, 'pingRetryAt', now + pingRetryDelay)
    pingRetry = 1
  end
  return {decision, state, method, pingRetry}
end

--[[
  finish_breaker(bk, t): the breaker and fallback accounting of the finish record `t`.
  Returns { breakerTransition, breakerFailures, methodTransition }
    breakerTransition: '' | 'opened' | 'closed' | 'reopened' | 'released' (a probe whose pair gave
      no verdict, session_not_found, hands the probe back, due at once)
    methodTransition: '' | 'to_tool' | 'to_ping'
]]
local function finish_breaker(bk, t)
  local now = t.now
  local b = redis.call('HMGET', bk, 'state', 'probeToken', 'fails')
  local state = b[1] or 'closed'
  local bt, bfails = '', tonumber(b[3] or '0')
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
  local mop, mt = t.methodOp, ''
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
  return {bt, bfails, mt}
end
