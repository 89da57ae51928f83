--[[
  Releases a lock if `token` still holds it (compare-and-delete, as Redlock releases): the
  single-node locker's release (src/lock/locker.ts) and the worker's release of a pair lock its
  tick took in its begin script (packages/worker/src/tick/tick-lock.ts).
  Input:
    KEYS[1] the lock, e.g. the pair lock <shard prefix>:lock:<sessionId>:<backendId>
    ARGV[1] the holder's token
  Output: 1 when released, 0 when the lock had expired or belongs to someone else.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
