--[[
  begin_breaker(bk, now, token, lease, pingRetryDelay, fallback): the backend half of a tick's
  start. Decides, against the backend's breaker, whether this tick calls the backend.
  Returns { decision, breakerState, learnedMethod, pingRetry (0|1) }
    decision: 'skip_open' | 'call' | 'probe'
    'probe': this tick claimed the backend's one probe (state -> probing, lease until now + lease).
    pingRetry = 1: this tick claimed the ping retry of a backend that learned its tool (the next
    retry is pushed out by pingRetryDelay), so one worker in the cluster retries ping per window.
  Field names: BACKEND_FIELDS in packages/shared (a test keeps them in step).
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
    if now >= tonumber(b[2] or '0') then claim() else decision = 'skip_open' end
  elseif state == 'probing' then
    -- A claim whose lease ran out belongs to a worker that died mid-probe: take it over.
    if now >= tonumber(b[3] or '0') then claim() else decision = 'skip_open' end
  end
  local method = b[4] or 'ping'
  if decision == 'skip_open' then return {decision, state, method, 0} end
  local pingRetry = 0
  if fallback == '1' and method == 'tool' and now >= tonumber(b[5] or '0') then
    redis.call('HSET', bk, 'pingRetryAt', now + pingRetryDelay)
    pingRetry = 1
  end
  return {decision, state, method, pingRetry}
end
