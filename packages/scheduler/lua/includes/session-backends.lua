--[[
  The backend ids a session registered live in its own hash, one field `b:<backendId>` (empty
  value) each: a listpack entry of a few bytes instead of a set key of its own per session.
  session_backends(sessionKey, legacyKey): the session's backend ids. A session written before
  this layout (0.1.0) keeps them in the set legacyKey (<shard prefix>:session:<sid>:backends):
  they are moved into the hash here and the set is deleted, so an upgrade needs no migration step.
]]
local function session_backends(sessionKey, legacyKey)
  local ids = {}
  for _, f in ipairs(redis.call('HKEYS', sessionKey)) do
    if string.sub(f, 1, 2) == 'b:' then table.insert(ids, string.sub(f, 3)) end
  end
  if #ids == 0 and redis.call('EXISTS', legacyKey) == 1 then
    ids = redis.call('SMEMBERS', legacyKey)
    for _, bid in ipairs(ids) do redis.call('HSET', sessionKey, 'b:' .. bid, '') end
    redis.call('DEL', legacyKey)
  end
  return ids
end
