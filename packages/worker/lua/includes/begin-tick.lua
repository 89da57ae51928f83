--[[
  begin_tick(pk, bk, now, token, lease, pingRetryDelay, fallback, trafficWindow): reads a pair and
  decides, against its backend's breaker, whether this tick calls the backend.
  Returns { decision, breakerState, learnedMethod, pingRetry (0|1), pairHashFlat }
    decision: 'no_pair' | 'inactive' | 'recent_traffic' | 'skip_open' | 'call' | 'probe'
    'probe': this tick claimed the backend's one probe (state -> probing, lease until now + lease).
    'recent_traffic': the pair carried traffic less than trafficWindow ms ago (its `trafficAt`);
      records `skipped:recent_traffic` on the pair.
    'skip_open': records `skipped:breaker_open` on the pair.
    pingRetry = 1: this tick claimed the ping retry of a backend that learned its tool (the next
    retry is pushed out by pingRetryDelay), so one worker in the cluster retries ping per window.
  Field names: PAIR_FIELDS and BACKEND_FIELDS in packages/shared (a test keeps them in step).
]]
local function begin_tick(pk, bk, now, token, lease, pingRetryDelay, fallback, trafficWindow)
  local pair = redis.call('HGETALL', pk)
  if #pair == 0 then return {'no_pair', '', '', 0, pair} end
  -- The fields this decision needs, from the HGETALL above (not read a second time).
  local f = {}
  for i = 1, #pair, 2 do f[pair[i]] = pair[i + 1] end
  if (f.status and f.status ~= 'active') or not f.bsid or f.bsid == '' then return {'inactive', '', '', 0, pair} end
  if trafficWindow > 0 and f.trafficAt and now - tonumber(f.trafficAt) < trafficWindow then
    redis.call('HSET', pk, 'lastAt', now, 'last', 'skipped:recent_traffic')
    return {'recent_traffic', '', '', 0, pair}
  end
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
  if decision == 'skip_open' then
    redis.call('HSET', pk, 'lastAt', now, 'last', 'skipped:breaker_open')
    return {decision, state, b[4] or 'ping', 0, pair}
  end
  local method = b[4] or 'ping'
  local pingRetry = 0
  if fallback == '1' and method == 'tool' and now >= tonumber(b[5] or '0') then
    redis.call('HSET', bk, 'pingRetryAt', now + pingRetryDelay)
    pingRetry = 1
  end
  return {decision, state, method, pingRetry, pair}
end
