--[[
  Applies `session.ended`: terminal whatever the sequence (see includes/end-session.lua).
  Input:
    KEYS[1] session hash, KEYS[2] live-session count
    ARGV[1] sessionId    ARGV[2] sequence    ARGV[3] now (ms)
    ARGV[4] pair key prefix    ARGV[5] tombstone TTL (ms)    ARGV[6] reason
  Output: { 'applied', backendId... } | { 'duplicate', backendId... } (already ended: the backends
    it had, from the tombstone, so that the caller completes the job-scheduler removals)
]]
--- @include "end-session"
local s = redis.call('HMGET', KEYS[1], 'state', 'seq', 'backends')
if s[1] == 'ended' then
  local result = {'duplicate'}
  for bid in string.gmatch(s[3] or '', '[^,]+') do table.insert(result, bid) end
  return result
end
local seq = math.max(tonumber(s[2] or '-1'), tonumber(ARGV[2]))
return end_session(KEYS[1], KEYS[2], ARGV[4], seq, tonumber(ARGV[3]), ARGV[6], tonumber(ARGV[5]))
