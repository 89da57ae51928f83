--[[
  Finishes a keepalive tick where the pair and its backend share a node: records the outcome on
  the pair (fenced on its epoch), does the breaker and fallback accounting, releases the pair
  lock if this tick's token holds it — unless the worker still has work under it (KEEPS_LOCK in
  includes/pair.lua: the removal of the job scheduler of a pair this write stopped).
  Input:
    KEYS[1] pair hash, KEYS[2] backend hash, KEYS[3] pair lock (as begin-tick-3.lua)
    ARGV[1] the finish input, JSON (FinishRecord in src/store/scripts.ts), the same for
      finish-pair-2.lua and finish-breaker-1.lua:
      epoch            pair epoch read under the lock (the fence)
      now              ms
      kind, reason     'success' | 'failure', and the failure reason; 'skipped' when the tick
        made no call (only `lastAt` and `last` are recorded, and the stop if any)
      label            the pair's `last` field ('success', 'failure:timeout')
      latencyMs        optional
      pairStatus       optional new pair status ('expired' after a 404)
      stop             optional { off, credSeq }: keepalive off for the pair's credentials
        (record_pair in includes/pair.lua)
      lock             optional { token }: the scripts hold the pair lock with this token, and
        delete it only while this token holds it; absent when it is held outside the scripts
      breakerOp        'count' | 'reset' | 'none'
      failureThreshold breaker.failure_threshold
      minFailureSpanMs breaker.min_failure_span: the failures must also span this long to open
      probeDelayMs     time to the next probe if this opens or re-opens the breaker (jittered)
      probeToken       optional: set when this tick holds the probe (the token it claimed it with)
      methodOp         optional: 'ping_ok' | 'ping_failed_tool_ok' | 'ping_unsupported'
      afterFailures    fallback.after_failures (K)
      pingRetryDelayMs time to the next ping retry if this switches to the tool (jittered)
  Output: JSON { record, stopped, lock, backend } (FinishReply in src/store/scripts.ts)
    record   'recorded' | 'fenced' (the pair's epoch moved on) | 'gone' (no pair)
    stopped  true when this write stopped the pair (record_pair in includes/pair.lua)
    lock     'kept' | 'released' | 'none' after the finish (keep_lock in includes/pair.lua)
    backend  { breakerTransition, breakerFailures, methodTransition }: finish_breaker in
      includes/backend.lua
]]
--- @include "pair"
--- @include "backend"
local t = cjson.decode(ARGV[1])
local r = record_pair(KEYS[1], t)
r.backend = finish_breaker(KEYS[2], t)
r.lock = keep_lock(KEYS[3], t.lock, r.stopped and 'stopped' or 'finished')
return cjson.encode(r)
