--[[
  The pair half of a tick's finish, where the pair and its backend live in different hash slots
  (Redis Cluster); finish-breaker-1.lua does the backend half.
  Input:
    KEYS[1] pair hash      <shard prefix>:pair:<sessionId>:<backendId>
    ARGV[1] the finish record, JSON (as finish-tick-2.lua; kind may also be 'skipped')
  Output: consecutive pair failures, -1 fenced, -2 gone (see includes/record-pair.lua)
]]
--- @include "record-pair"
return record_pair(KEYS[1], cjson.decode(ARGV[1]))
