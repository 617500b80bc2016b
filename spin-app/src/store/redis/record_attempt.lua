-- KEYS: 1 webhook outbox, 2 outbox state, 3 attempt log, 4 stats
-- ARGV: 1 member, 2 outcome (delivered | retrying | failed), 3 next due ms,
--       4 state json, 5 attempt json, 6 attempt log length
-- Records one delivery attempt: a delivered or failed event leaves the
-- outbox; a retried one is due again at `next due` with its state kept.
-- Only while the event is still in the outbox (a late duplicate changes nothing).
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if ARGV[2] == 'retrying' then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HINCRBY', KEYS[4], 'webhooks_' .. ARGV[2], 1)
end
redis.call('HINCRBY', KEYS[4], 'webhook_attempts', 1)
redis.call('LPUSH', KEYS[3], ARGV[5])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
return 1
