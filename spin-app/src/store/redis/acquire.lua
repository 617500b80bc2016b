-- KEYS: 1 waiters zset; ARGV: 1 now ms, 2 max, 3 waiter id, 4 lease end ms
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
-- Only ever extend: a short lease must not cut the set's life below the
-- longer leases it holds (PEXPIRETIME is -1 for a set without expiry yet).
if redis.call('PEXPIRETIME', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
end
return 1
