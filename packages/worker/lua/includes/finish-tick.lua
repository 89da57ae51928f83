--[[
  finish_tick(pk, bk, t): both halves of a tick's finish in one script, where the pair and its
  backend share a node: records the outcome on the pair (fenced on its epoch), then the breaker
  and fallback accounting on the backend.
  Returns { pairReply, breakerTransition, breakerFailures, methodTransition }
    pairReply: consecutive pair failures, -1 fenced, -2 gone (see record-pair.lua)
]]
--- @include "record-pair"
--- @include "finish-breaker"
local function finish_tick(pk, bk, t)
  local rec = record_pair(pk, t)
  local b = finish_breaker(bk, t)
  return {rec, b[1], b[2], b[3]}
end
