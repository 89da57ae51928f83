--[[
  The pair half of a tick's finish on a Redis Cluster: records the outcome on the pair (fenced on
  its epoch) and releases the pair lock if this tick's token holds it, as finish-tick-3.lua does.
  finish-breaker-1.lua does the backend half.
  Input:
    KEYS[1] pair hash, KEYS[2] pair lock (as begin-pair-2.lua)
    ARGV[1] the finish record, JSON (as finish-tick-3.lua; kind may also be 'skipped': the
      backend half said 'breaker_open' after the pair half started)
    ARGV[2] tick token
  Output: { pairReply, lockHeld (0|1), stopped (0|1) }
    pairReply: consecutive pair failures, -1 fenced, -2 gone; stopped: this write stopped the
      pair (record_pair in includes/pair.lua)
]]
--- @include "pair"
local t = cjson.decode(ARGV[1])
local rec, stopped = record_pair(KEYS[1], t)
return {rec, keep_lock(KEYS[2], ARGV[2], stopped == 1 and 'stopped' or 'finished'), stopped}
