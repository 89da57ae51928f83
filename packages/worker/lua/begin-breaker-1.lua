--[[
  The backend half of a tick's start on a Redis Cluster (after begin-pair-2.lua said 'go'), in
  the backend's own hash slot, so that the breaker is one for the whole cluster.
  Input:
    KEYS[1] backend hash   <prefix>:backend:{<backendId>}
    ARGV[1] now (ms)
    ARGV[2] tick token (proves probe ownership when the tick finishes)
    ARGV[3] probe lease (ms)
    ARGV[4] ping retry delay (ms, jittered)
    ARGV[5] '1' when the backend may switch between ping and its tool, else '0'
  Output: { decision, breakerState, learnedMethod, pingRetry (0|1) }
    decision: 'breaker_open' | 'call' | 'probe' (begin_breaker in includes/backend.lua)
]]
--- @include "backend"
return begin_breaker(KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])
