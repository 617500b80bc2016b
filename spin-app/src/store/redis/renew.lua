-- KEYS: 1 waiters zset; ARGV: 1 waiter id, 2 lease end ms
-- 0: the lease is gone (its key was revoked, or it lapsed).
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
if redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[2], ARGV[1]) == 1 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'GT')
end
return 1
