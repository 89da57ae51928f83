--[[
  Starts a tick behind the pair lock, taken in the same script (one lock node: the main Redis).
  The lock is the same key with the same SET NX PX and compare-and-delete that Redlock runs on one
  node, so it still excludes a vMCP's reinitializeBackend (Redlock on the same resource).
  Input:
    KEYS[1] pair hash, KEYS[2] backend hash (as begin-tick-2.lua)
    KEYS[3] pair lock      <prefix>:lock:<sessionId>:<backendId>
    ARGV[1..6] as begin-tick-2.lua
    ARGV[7] lock TTL (ms); the lock token is the tick token ARGV[2]
  Output: { 'locked', '', '', 0, {} } when another holder has the lock; otherwise begin_tick's
    reply. The lock is released here when the tick ends here ('no_pair', 'recent_traffic',
    'skip_open'); it stays
    held for 'call'/'probe' (until finish-tick-release-3.lua) and for 'inactive' (the worker
    removes the pair's job scheduler under it, then runs shared/lua/release-lock-1.lua).
]]
--- @include "begin-tick"
if not redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', tonumber(ARGV[7])) then return {'locked', '', '', 0, {}} end
local r = begin_tick(KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]))
if r[1] == 'no_pair' or r[1] == 'recent_traffic' or r[1] == 'skip_open' then redis.call('DEL', KEYS[3]) end
return r
