--[[
  finish_breaker(bk, t): the backend half of a tick's finish — the breaker and fallback accounting
  of the finish record `t` (see finish-tick-2.lua). Every breaker transition happens here (or in
  begin_breaker), atomically across all workers; the reply names the transition this call made, so
  only that worker logs it and publishes its event.
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
