--[[
  record_pair(pk, t): records one keepalive outcome on a pair, fenced on the epoch the worker read
  under its lock, so a worker whose lock expired mid-call cannot overwrite state written after a
  re-initialize. `t` is the finish record (see finish-tick-2.lua); kind 'skipped' records only
  `lastAt` and `last` (a tick that the breaker skipped after its pair half started).
  Returns consecutive failures after the write, -1 when fenced (epoch moved), -2 when the pair is gone.
]]
local function record_pair(pk, t)
  local epoch = redis.call('HGET', pk, 'epoch')
  if not epoch then return -2 end
  if tonumber(epoch) ~= t.epoch then return -1 end
  redis.call('HSET', pk, 'lastAt', t.now, 'last', t.label)
  -- A skip (the split start's 'skip_open') records only when and why.
  if t.kind == 'skipped' then return 0 end
  if t.latencyMs then redis.call('HSET', pk, 'latMs', t.latencyMs) end
  if t.pairStatus then redis.call('HSET', pk, 'status', t.pairStatus) end
  if t.kind == 'success' then
    redis.call('HSET', pk, 'okAt', t.now)
    redis.call('HDEL', pk, 'fails')
    return 0
  end
  redis.call('HSET', pk, 'failAt', t.now, 'failReason', t.reason)
  return redis.call('HINCRBY', pk, 'fails', 1)
end
