--[[
  Finishes a tick whose pair lock is held elsewhere (Redlock).
  Input:
    KEYS[1] pair hash      <prefix>:pair:<sessionId>:<backendId>
    KEYS[2] backend hash   <prefix>:backend:<backendId>
    ARGV[1] the finish record, JSON (FinishRecord in src/store/tick-store.ts):
      epoch            pair epoch read under the lock (the fence)
      now              ms
      kind, reason     'success' | 'failure', and the failure reason
      label            the pair's `last` field ('success', 'failure:timeout')
      latencyMs        optional
      pairStatus       optional new pair status ('expired' after a 404)
      breakerOp        'count' | 'reset' | 'none'
      failureThreshold breaker.failure_threshold
      minFailureSpanMs breaker.min_failure_span: the failures must also span this long to open
      probeDelayMs     time to the next probe if this opens or re-opens the breaker (jittered)
      probeToken       optional: set when this tick holds the probe
      methodOp         optional: 'ping_ok' | 'ping_failed_tool_ok' | 'ping_unsupported'
      afterFailures    fallback.after_failures (K)
      pingRetryDelayMs time to the next ping retry if this switches to the tool (jittered)
  Output: see includes/finish-tick.lua
]]
--- @include "finish-tick"
return finish_tick(KEYS[1], KEYS[2], cjson.decode(ARGV[1]))
