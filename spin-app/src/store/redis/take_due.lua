-- KEYS: 1 webhook outbox, 2 outbox state
-- ARGV: 1 now ms, 2 hold until ms, 3 limit
-- Takes up to `limit` events due by now: each is held (its score pushed to
-- `hold until`) so another dispatcher skips it while this one attempts it;
-- a dispatcher that dies leaves it due again at `hold until`.
-- Reply: member, state json ('' = never attempted), ...
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], m)
  out[#out + 1] = m
  out[#out + 1] = redis.call('HGET', KEYS[2], m) or ''
end
return out
