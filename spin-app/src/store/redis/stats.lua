-- KEYS: 1 stats, 2 pending, 3 key ids; ARGV: 1 now ms, 2 waiter set prefix
local expired = redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if expired > 0 then redis.call('HINCRBY', KEYS[1], 'expired', expired) end
local waiters = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  waiters = waiters + redis.call('ZCOUNT', ARGV[2] .. id, '(' .. ARGV[1], '+inf')
end
local out = redis.call('HGETALL', KEYS[1])
out[#out + 1] = 'waiters'
out[#out + 1] = tostring(waiters)
return out
