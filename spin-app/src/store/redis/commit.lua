-- KEYS: 1 session, 2 events, 3 link hash, 4 new roblox set, 5 old roblox set,
--       6 stats, 7 pending, 8 webhook, 9 webhook outbox
-- ARGV: 1 expected json, 2 new json, 3 px, 4 status, 5 channel, 6 view json,
--       7 discordId ('' = no link write), 8 robloxId, 9 expected previous ('' = none),
--       10 sid, 11 how long the change feed outlives this change (ms), 12 now ms
local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then return {'conflict'} end
if ARGV[7] ~= '' then
  local prev = redis.call('HGET', KEYS[3], ARGV[7]) or ''
  if prev ~= ARGV[9] then return {'conflict'} end
  redis.call('HSET', KEYS[3], ARGV[7], ARGV[8])
  if prev ~= '' and prev ~= ARGV[8] then redis.call('SREM', KEYS[5], ARGV[7]) end
  redis.call('SADD', KEYS[4], ARGV[7])
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '8', '*', 'status', ARGV[4], 'session', ARGV[2])
redis.call('PEXPIRE', KEYS[2], math.min(tonumber(ARGV[3]), tonumber(ARGV[11])))
if ARGV[4] == 'completed' or ARGV[4] == 'cancelled' then
  redis.call('ZREM', KEYS[7], ARGV[10])
  redis.call('HINCRBY', KEYS[6], ARGV[4], 1)
  -- The webhook event, in the outbox in this same step (due now).
  local ev = redis.call('HGET', KEYS[8], 'events')
  local t = 'session.' .. ARGV[4]
  if ev and string.find(ev, ' ' .. t .. ' ', 1, true) then
    redis.call('ZADD', KEYS[9], 'NX', ARGV[12], t .. '|' .. ARGV[10])
  end
end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return {'ok'}
