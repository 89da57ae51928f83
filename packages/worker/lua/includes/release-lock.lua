--[[
  release_lock(key, token): compare-and-delete; deletes the lock only while `token` holds it.
  Returns 1 when deleted, 0 otherwise.
]]
local function release_lock(key, token)
  if redis.call('GET', key) == token then return redis.call('DEL', key) end
  return 0
end
