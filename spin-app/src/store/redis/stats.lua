-- KEYS: 1 stats, 2 pending, 3 key ids, 4 webhook, 5 webhook outbox
-- ARGV: 1 now ms, 2 waiter set prefix
sweep_expired(KEYS[2], KEYS[1], KEYS[4], KEYS[5], ARGV[1])
local waiters = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  waiters = waiters + redis.call('ZCOUNT', ARGV[2] .. id, '(' .. ARGV[1], '+inf')
end
local out = redis.call('HGETALL', KEYS[1])
out[#out + 1] = 'waiters'
out[#out + 1] = tostring(waiters)
return out
