--[[
  begin_pair(pk, now, trafficWindow): the pair half of a tick's start. Reads the pair and decides
  whether the tick goes on to the breaker.
  Returns { decision, pairHashFlat }
    decision: 'no_pair' | 'inactive' | 'recent_traffic' | 'go'
    'recent_traffic': the pair carried traffic less than trafficWindow ms ago (its `trafficAt`);
      records `skipped:recent_traffic` on the pair.
  Field names: PAIR_FIELDS in packages/shared (a test keeps them in step).
]]
local function begin_pair(pk, now, trafficWindow)
  local pair = redis.call('HGETALL', pk)
  if #pair == 0 then return {'no_pair', pair} end
  -- The fields this decision needs, from the HGETALL above (not read a second time).
  local f = {}
  for i = 1, #pair, 2 do f[pair[i]] = pair[i + 1] end
  if (f.status and f.status ~= 'active') or not f.bsid or f.bsid == '' then return {'inactive', pair} end
  if trafficWindow > 0 and f.trafficAt and now - tonumber(f.trafficAt) < trafficWindow then
    redis.call('HSET', pk, 'lastAt', now, 'last', 'skipped:recent_traffic')
    return {'recent_traffic', pair}
  end
  return {'go', pair}
end
