--[[
  The pair half of a tick's start, where the pair and its backend live in different hash slots
  (Redis Cluster); begin-breaker-1.lua follows when the reply is 'go'.
  Input:
    KEYS[1] pair hash      <shard prefix>:pair:<sessionId>:<backendId>
    ARGV[1] now (ms)
    ARGV[2] traffic window (ms): a pair that carried traffic within it is skipped; 0 = never
  Output: see includes/begin-pair.lua
]]
--- @include "begin-pair"
return begin_pair(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
