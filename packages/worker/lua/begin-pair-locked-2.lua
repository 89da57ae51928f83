--[[
  The pair half of a tick's start behind the pair lock, taken in the same script (the lock is in
  the pair's hash slot; the same SET NX PX and compare-and-delete as Redlock on one node).
  Input:
    KEYS[1] pair hash, KEYS[2] pair lock   <shard prefix>:lock:<sessionId>:<backendId>
    ARGV[1] now (ms), ARGV[2] traffic window (ms) (as begin-pair-1.lua)
    ARGV[3] tick token (the lock token)
    ARGV[4] lock TTL (ms)
  Output: { 'locked', {} } when another holder has the lock; otherwise begin_pair's reply. The
    lock is released here when the tick ends here ('no_pair', 'recent_traffic'); it stays held for
    'go' and 'inactive'.
]]
--- @include "begin-pair"
if not redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', tonumber(ARGV[4])) then return {'locked', {}} end
local r = begin_pair(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if r[1] == 'no_pair' or r[1] == 'recent_traffic' then redis.call('DEL', KEYS[2]) end
return r
