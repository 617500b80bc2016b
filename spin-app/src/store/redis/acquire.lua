-- KEYS: 1 waiters zset; ARGV: 1 now ms, 2 max, 3 waiter id, 4 lease end ms
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
-- The set outlives every renewal of this lease: a renewal is one ZADD, and
-- a waiter lives at most as long as its session (a day at most). Only ever
-- extend (PEXPIRETIME is -1 for a set without expiry yet); a crashed
-- instance's leases lapse by their score and leave at the next acquire.
local keep = tonumber(ARGV[4]) + 86400000
if redis.call('PEXPIRETIME', KEYS[1]) < keep then
  redis.call('PEXPIREAT', KEYS[1], keep)
end
return 1
