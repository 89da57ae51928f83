--[[
  end_session(sessionKey, countKey, pairPrefix, seq, now, reason, tombstoneMs):
  deletes a session's pairs, takes a live session off its shard's count, and leaves a tombstone
  (state=ended, TTL tombstoneMs) so that a late or duplicated `session.registered` cannot resurrect
  it. The tombstone keeps the backend ids (`backends`, comma-separated), so that a redelivered
  `session.ended` can complete the job-scheduler removals.
  Returns { 'applied', backendId... }: the backends the session had.
]]
--- @include "session-backends"
local function end_session(sessionKey, countKey, pairPrefix, seq, now, reason, tombstoneMs)
  local result = {'applied'}
  -- Live (not a message ending a session never registered here): it leaves the count.
  if redis.call('HEXISTS', sessionKey, 'seq') == 1 then redis.call('DECR', countKey) end
  for _, bid in ipairs(session_backends(sessionKey)) do
    redis.call('DEL', pairPrefix .. bid)
    table.insert(result, bid)
  end
  redis.call('DEL', sessionKey)
  redis.call('HSET', sessionKey, 'state', 'ended', 'seq', seq, 'endedAt', now, 'endReason', reason,
    'backends', table.concat(result, ',', 2))
  redis.call('PEXPIRE', sessionKey, tombstoneMs)
  return result
end
