--[[
  Stores a backend session the vMCP has just re-initialized (run by reinitializeBackend while it
  holds the pair lock): new backend session id and protocol version, epoch + 1 (so every write of
  a worker that read the old state is fenced out), failure fields reset, and an `expired` pair
  (the old session answered 404 and the worker removed its job scheduler) back to `active`. An
  `off` pair stays off: the keepalive policy is decided at registration, by the scheduler.
  Never creates a pair: a session that ended (or was reaped) stays ended.
  Input:
    KEYS[1] pair hash   <shard prefix>:pair:<sessionId>:<backendId>
    ARGV[1] backend session id
    ARGV[2] protocol version, or ''
    ARGV[3] now (ms)
  Output: { 'applied', newEpoch, previousStatus } | { 'unknown' }
]]
local pk = KEYS[1]
local old = redis.call('HMGET', pk, 'epoch', 'status')
if old[1] == false then return {'unknown'} end
local previous = old[2] or 'active'
local status = previous
if previous == 'expired' then status = 'active' end
local epoch = redis.call('HINCRBY', pk, 'epoch', 1)
redis.call('HDEL', pk, 'last', 'lastAt', 'okAt', 'failAt', 'failReason', 'latMs', 'fails')
redis.call('HSET', pk, 'bsid', ARGV[1], 'pv', ARGV[2], 'status', status, 'regAt', ARGV[3])
return {'applied', epoch, previous}
