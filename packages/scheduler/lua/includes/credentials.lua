--[[
  A pair's session credentials (backends with `auth: session`), in its hash:
    cred      the sealed envelope, JSON, exactly as the vMCP sent it (only a worker opens it)
    credSeq   the sequence of the message that wrote it
    credExp   its expiresAt (ms), when it has one
    credNote  the expiry notice already published for it ('expiring', then 'expired'; the worker's)
  Off reasons that new credentials clear: CREDENTIAL_OFF.
]]
local CREDENTIAL_OFF = { no_credentials = true, credentials_undecryptable = true, unauthorized = true }

-- store_credentials(pk, seq, cred, exp): writes the credentials message `seq` carried, unless a
-- newer message wrote the stored ones or they are the stored ones (a refresh resends them as they
-- were sealed). True when new credentials were written.
local function store_credentials(pk, seq, cred, exp)
  if cred == '' then return false end
  local cur = redis.call('HMGET', pk, 'cred', 'credSeq')
  if cur[1] == cred or (cur[2] and tonumber(cur[2]) >= seq) then return false end
  redis.call('HSET', pk, 'cred', cred, 'credSeq', seq)
  if exp == '' then redis.call('HDEL', pk, 'credExp') else redis.call('HSET', pk, 'credExp', exp) end
  redis.call('HDEL', pk, 'credNote')
  return true
end

-- revive(pk): a pair that is off for a credentials reason is active again (new credentials came).
-- True when it was off that way.
local function revive(pk)
  local p = redis.call('HMGET', pk, 'status', 'off')
  if p[1] ~= 'off' or not CREDENTIAL_OFF[p[2]] then return false end
  redis.call('HDEL', pk, 'status', 'off')
  return true
end
