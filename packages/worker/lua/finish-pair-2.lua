--[[
  The pair half of a tick's finish on a Redis Cluster: records the outcome on the pair (fenced on
  its epoch) and releases the pair lock if this tick's token holds it, as finish-tick-3.lua does.
  finish-breaker-1.lua does the backend half.
  Input:
    KEYS[1] pair hash, KEYS[2] pair lock (as begin-pair-2.lua)
    ARGV[1] the finish input, JSON, as finish-tick-3.lua (kind 'skipped' also when the backend
      half of the start said 'breaker_open' after the pair half said 'go')
  Output: JSON { record, stopped, lock }, as finish-tick-3.lua without `backend`
]]
--- @include "pair"
local t = cjson.decode(ARGV[1])
local r = record_pair(KEYS[1], t)
r.lock = keep_lock(KEYS[2], t.lock, r.stopped and 'stopped' or 'finished')
return cjson.encode(r)
