--[[
  The backend ids a session registered live in its own hash, one field `b:<backendId>` (empty
  value) each: a listpack entry of a few bytes instead of a set key of its own per session.
  session_backends(sessionKey): the session's backend ids.
]]
local function session_backends(sessionKey)
  local ids = {}
  for _, f in ipairs(redis.call('HKEYS', sessionKey)) do
    if string.sub(f, 1, 2) == 'b:' then table.insert(ids, string.sub(f, 3)) end
  end
  return ids
end
