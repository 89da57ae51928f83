import { LuaScript } from "../redis/lua-script.js";
import { RECORD_PAIR_LUA } from "../state/scripts.js";

/*
 * The two scripts of one keepalive tick: the pair and the backend's breaker/method state are
 * read in one script, and the outcome, the breaker accounting and the fallback accounting are
 * written in one script. On one lock node the pair lock rides in them too (BEGIN_TICK_LOCKED,
 * FINISH_TICK_RELEASE below), so a keepalive costs two of our round trips plus BullMQ's own. Every breaker transition
 * happens inside one of them, so it is atomic across all workers; the script that made a
 * transition reports it, and only that worker logs it and publishes its event.
 *
 * Field names: BACKEND_FIELDS (backend-state.ts) and PAIR_FIELDS (state/pair-state.ts).
 * KEYS are the pair hash and the backend hash; with a hash-tagged prefix both are in one slot.
 */

/**
 * Starts a tick: reads the pair and decides, against the backend's breaker, whether to call.
 * KEYS: pair, backend
 * ARGV: now, token, probeLeaseMs, pingRetryDelayMs, fallback ('1' when the backend may switch
 *       between ping and its tool, i.e. `tool:<name>` without every-tick)
 * Returns { decision, breakerState, learnedMethod, pingRetry (0|1), pairHashFlat }
 * decision: 'no_pair' | 'inactive' | 'skip_open' | 'call' | 'probe'.
 * 'probe' means this tick claimed the backend's one probe (state → probing, lease until
 * now + probeLeaseMs); 'skip_open' records `skipped:breaker_open` on the pair. pingRetry=1 means
 * this tick claimed the ping retry of a backend that learned its tool (next retry pushed out by
 * pingRetryDelayMs), so one worker in the cluster retries ping per window.
 */
const BEGIN_TICK_LUA = `
local pk, bk = KEYS[1], KEYS[2]
local now, token, lease = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local pair = redis.call('HGETALL', pk)
if #pair == 0 then return {'no_pair', '', '', 0, pair} end
local p = redis.call('HMGET', pk, 'status', 'bsid')
if (p[1] and p[1] ~= 'active') or not p[2] or p[2] == '' then return {'inactive', '', '', 0, pair} end
local b = redis.call('HMGET', bk, 'state', 'probeAt', 'probeUntil', 'method', 'pingRetryAt')
local state = b[1] or 'closed'
local decision = 'call'
local function claim()
  redis.call('HSET', bk, 'state', 'probing', 'probeToken', token, 'probeUntil', now + lease)
  decision = 'probe'
end
if state == 'open' then
  if now >= tonumber(b[2] or '0') then claim() else decision = 'skip_open' end
elseif state == 'probing' then
  -- A claim whose lease ran out belongs to a worker that died mid-probe: take it over.
  if now >= tonumber(b[3] or '0') then claim() else decision = 'skip_open' end
end
if decision == 'skip_open' then
  redis.call('HSET', pk, 'lastAt', now, 'last', 'skipped:breaker_open')
  return {decision, state, b[4] or 'ping', 0, pair}
end
local method = b[4] or 'ping'
local pingRetry = 0
if ARGV[5] == '1' and method == 'tool' and now >= tonumber(b[5] or '0') then
  redis.call('HSET', bk, 'pingRetryAt', now + tonumber(ARGV[4]))
  pingRetry = 1
end
return {decision, state, method, pingRetry, pair}
`;
export const BEGIN_TICK = new LuaScript(BEGIN_TICK_LUA);

/**
 * Finishes a tick: records the outcome on the pair (fenced on its epoch), then the breaker and
 * fallback accounting on the backend.
 * KEYS: pair, backend
 * ARGV: 1 epoch, 2 now, 3 kind, 4 reason|'', 5 latencyMs|'', 6 label, 7 pairStatus|'',
 *       8 breakerOp ('count' | 'reset' | 'none'), 9 failureThreshold, 10 probeDelayMs (jittered),
 *       11 probeToken|'' (set when this tick claimed the probe),
 *       12 methodOp ('' | 'ping_ok' | 'ping_failed_tool_ok' | 'ping_unsupported'),
 *       13 afterFailures (K), 14 pingRetryDelayMs (jittered)
 * Returns { pairReply, breakerTransition, breakerFailures, methodTransition, pingFailures }
 * pairReply: consecutive pair failures, -1 fenced, -2 gone.
 * breakerTransition: '' | 'opened' | 'closed' | 'reopened' | 'released' (a probe whose pair
 * gave no verdict — session_not_found — hands the probe back, due at once).
 * methodTransition: '' | 'to_tool' | 'to_ping'.
 */
const FINISH_TICK_LUA = `${RECORD_PAIR_LUA}
local pk, bk = KEYS[1], KEYS[2]
local rec = record_pair(pk, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
local now = tonumber(ARGV[2])
local op, threshold, delay = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
local b = redis.call('HMGET', bk, 'state', 'probeToken', 'fails')
local state = b[1] or 'closed'
local bt, bfails = '', tonumber(b[3] or '0')
if ARGV[11] ~= '' and state == 'probing' and b[2] == ARGV[11] then
  redis.call('HDEL', bk, 'probeToken', 'probeUntil')
  if op == 'reset' then
    redis.call('HSET', bk, 'state', 'closed', 'fails', 0)
    redis.call('HDEL', bk, 'probeAt', 'reason', 'openedAt')
    bt, bfails = 'closed', 0
  elseif op == 'count' then
    redis.call('HSET', bk, 'state', 'open', 'probeAt', now + delay, 'reason', ARGV[4])
    bfails = redis.call('HINCRBY', bk, 'fails', 1)
    bt = 'reopened'
  else
    redis.call('HSET', bk, 'state', 'open', 'probeAt', now)
    bt = 'released'
  end
elseif state == 'closed' then
  if op == 'reset' then
    if bfails ~= 0 then redis.call('HSET', bk, 'fails', 0) end
    bfails = 0
  elseif op == 'count' then
    bfails = redis.call('HINCRBY', bk, 'fails', 1)
    if bfails >= threshold then
      redis.call('HSET', bk, 'state', 'open', 'reason', ARGV[4], 'openedAt', now, 'probeAt', now + delay)
      bt = 'opened'
    end
  end
end
-- Open, or probing by another tick: this is the late result of a call that started before the
-- breaker opened. It changes nothing: only the probe decides.
local mop, mt, pf = ARGV[12], '', 0
if mop ~= '' then
  local m = redis.call('HMGET', bk, 'method', 'pingFails')
  pf = tonumber(m[2] or '0')
  if mop == 'ping_ok' then
    if m[1] == 'tool' then
      redis.call('HDEL', bk, 'method', 'methodAt', 'methodReason', 'pingRetryAt')
      mt = 'to_ping'
    end
    if pf ~= 0 then redis.call('HSET', bk, 'pingFails', 0) end
    pf = 0
  elseif mop == 'ping_failed_tool_ok' and m[1] == 'tool' then
    -- The ping retry of a backend already on its tool failed: it stays on the tool.
    pf = 0
  elseif mop == 'ping_failed_tool_ok' then
    pf = redis.call('HINCRBY', bk, 'pingFails', 1)
    if pf >= tonumber(ARGV[13]) then
      redis.call('HSET', bk, 'method', 'tool', 'methodAt', now, 'methodReason', 'ping_failures',
        'pingRetryAt', now + tonumber(ARGV[14]), 'pingFails', 0)
      mt = 'to_tool'
    end
  elseif mop == 'ping_unsupported' then
    if m[1] ~= 'tool' then
      redis.call('HSET', bk, 'method', 'tool', 'methodAt', now, 'methodReason', 'method_not_found',
        'pingRetryAt', now + tonumber(ARGV[14]))
      mt = 'to_tool'
    end
    redis.call('HSET', bk, 'pingFails', 0)
    pf = 0
  end
end
return {rec, bt, bfails, mt, pf}
`;
export const FINISH_TICK = new LuaScript(FINISH_TICK_LUA);

/*
 * Single-node fast path (no `lock.redis_urls`): the pair lock is taken inside BEGIN_TICK and
 * released inside FINISH_TICK, so a keepalive costs two of our round trips instead of four
 * (docs/benchmarks.md). The lock is the same key and the same `SET NX PX` + compare-and-delete
 * that Redlock runs on one node, so it still excludes a vMCP's `reinitializeBackend` (Redlock
 * on the same resource). With several lock nodes the worker uses Redlock and the plain scripts.
 */

/**
 * BEGIN_TICK behind the pair lock.
 * KEYS: pair, backend, lock   ARGV: BEGIN_TICK's five, then 6 lock token, 7 lock TTL (ms)
 * Returns { 'locked', ... } when another holder has the lock; otherwise BEGIN_TICK's reply. The
 * lock is released in the script when the tick ends here (no pair, breaker open); it stays held
 * for 'call'/'probe' (until FINISH_TICK_RELEASE) and for 'inactive' (the worker removes the
 * pair's job scheduler under it, then releases).
 */
export const BEGIN_TICK_LOCKED = new LuaScript(`
local function begin_tick()
${BEGIN_TICK_LUA}
end
if not redis.call('SET', KEYS[3], ARGV[6], 'NX', 'PX', tonumber(ARGV[7])) then return {'locked', '', '', 0, {}} end
local r = begin_tick()
if r[1] == 'no_pair' or r[1] == 'skip_open' then redis.call('DEL', KEYS[3]) end
return r
`);

/**
 * FINISH_TICK, then release of the pair lock when it still holds our token.
 * KEYS: pair, backend, lock   ARGV: FINISH_TICK's fourteen, then 15 lock token
 */
export const FINISH_TICK_RELEASE = new LuaScript(`
local function finish_tick()
${FINISH_TICK_LUA}
end
local r = finish_tick()
if redis.call('GET', KEYS[3]) == ARGV[15] then redis.call('DEL', KEYS[3]) end
return r
`);

/** Compare-and-delete of the pair lock. KEYS: lock  ARGV: token */
export const RELEASE_PAIR_LOCK = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);
