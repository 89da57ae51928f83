--[[
  Finishes a keepalive tick where the pair and its backend share a node: records the outcome on
  the pair (fenced on its epoch), does the breaker and fallback accounting, releases the pair
  lock if this tick's token holds it — unless the worker still has work under it (KEEPS_LOCK in
  includes/pair.lua: the removal of the job scheduler of a pair this write stopped).
  Input:
    KEYS[1] pair hash, KEYS[2] backend hash, KEYS[3] pair lock (as begin-tick-3.lua)
    ARGV[1] the finish record, JSON (FinishRecord in src/store/tick-store.ts):
      epoch            pair epoch read under the lock (the fence)
      now              ms
      kind, reason     'success' | 'failure', and the failure reason
      label            the pair's `last` field ('success', 'failure:timeout')
      latencyMs        optional
      pairStatus       optional new pair status ('expired' after a 404)
      stop             optional { off, credSeq }: keepalive off for the pair's credentials
        (record_pair in includes/pair.lua); kind 'skipped' when the tick made no call
      breakerOp        'count' | 'reset' | 'none'
      failureThreshold breaker.failure_threshold
      minFailureSpanMs breaker.min_failure_span: the failures must also span this long to open
      probeDelayMs     time to the next probe if this opens or re-opens the breaker (jittered)
      probeToken       optional: set when this tick holds the probe
      methodOp         optional: 'ping_ok' | 'ping_failed_tool_ok' | 'ping_unsupported'
      afterFailures    fallback.after_failures (K)
      pingRetryDelayMs time to the next ping retry if this switches to the tool (jittered)
    ARGV[2] tick token: the lock is deleted only while this token holds it
  Output: { pairReply, breakerTransition, breakerFailures, methodTransition, lockHeld (0|1), stopped (0|1) }
    pairReply: consecutive pair failures, -1 fenced, -2 gone; stopped: this write stopped the
      pair (record_pair in includes/pair.lua)
    the rest: finish_breaker in includes/backend.lua
]]
--- @include "pair"
--- @include "backend"
local t = cjson.decode(ARGV[1])
local rec, stopped = record_pair(KEYS[1], t)
local b = finish_breaker(KEYS[2], t)
local held = keep_lock(KEYS[3], ARGV[2], stopped == 1 and 'stopped' or 'finished')
return {rec, b[1], b[2], b[3], held, stopped}
