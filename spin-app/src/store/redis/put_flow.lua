-- KEYS: 1 the session's flow hash; ARGV: 1 state hash, 2 record json,
--       3 ttl ms, 4 1 for a start (counted) or 0, 5 most starts
local starts = tonumber(redis.call('HGET', KEYS[1], 'starts') or '0') + tonumber(ARGV[4])
if tonumber(ARGV[4]) > 0 and starts > tonumber(ARGV[5]) then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'record', ARGV[2], 'starts', starts)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
