--[[
  end_session(sessionKey, zkey, sid, pairPrefix, seq, now, reason, tombstoneMs):
  deletes a session's pairs and leaves a tombstone (state=ended, TTL tombstoneMs) so that a late
  or duplicated `session.registered` cannot resurrect it. The tombstone keeps the backend ids
  (`backends`, comma-separated), so that a redelivered `session.ended` can complete the
  job-scheduler removals.
  Returns { 'applied', backendId... }: the backends the session had.
]]
--- @include "session-backends"
local function end_session(sessionKey, zkey, sid, pairPrefix, seq, now, reason, tombstoneMs)
  local result = {'applied'}
  for _, bid in ipairs(session_backends(sessionKey)) do
    redis.call('DEL', pairPrefix .. bid)
    table.insert(result, bid)
  end
  redis.call('DEL', sessionKey)
  redis.call('ZREM', zkey, sid)
  redis.call('HSET', sessionKey, 'state', 'ended', 'seq', seq, 'endedAt', now, 'endReason', reason,
    'backends', table.concat(result, ',', 2))
  redis.call('PEXPIRE', sessionKey, tombstoneMs)
  return result
end
