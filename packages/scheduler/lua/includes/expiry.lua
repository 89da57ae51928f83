--[[
  expiry(now, ttl, created, maxLife): when a session expires: min(now + ttl, created + maxLife).
]]
local function expiry(now, ttl, created, maxLife)
  local e = now + ttl
  if maxLife and created + maxLife < e then e = created + maxLife end
  return e
end
