--[[
  begin_tick(pk, bk, now, token, lease, pingRetryDelay, fallback, trafficWindow): both halves of a
  tick's start in one script, where the pair and its backend share a node (begin_pair, then
  begin_breaker).
  Returns { decision, breakerState, learnedMethod, pingRetry (0|1), pairHashFlat }
    decision: 'no_pair' | 'inactive' | 'recent_traffic' | 'skip_open' | 'call' | 'probe'
    'skip_open': records `skipped:breaker_open` on the pair.
]]
--- @include "begin-pair"
--- @include "begin-breaker"
local function begin_tick(pk, bk, now, token, lease, pingRetryDelay, fallback, trafficWindow)
  local p = begin_pair(pk, now, trafficWindow)
  if p[1] ~= 'go' then return {p[1], '', '', 0, p[2]} end
  local b = begin_breaker(bk, now, token, lease, pingRetryDelay, fallback)
  if b[1] == 'skip_open' then redis.call('HSET', pk, 'lastAt', now, 'last', 'skipped:breaker_open') end
  return {b[1], b[2], b[3], b[4], p[2]}
end
