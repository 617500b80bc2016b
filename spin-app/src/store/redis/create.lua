-- KEYS: 1 reuse slot, 2 session, 3 events, 4 stats, 5 pending, 6 quota window counter
-- ARGV: 1 expected sid ('' = empty), 2 sid, 3 session json, 4 px, 5 reuse px,
--       6 channel, 7 view json, 8 session key prefix, 9 pid, 10 now ms,
--       11 expiresAt ms, 12 charge ('1' = count this create), 13 window end ms,
--       14 quota limit
local n = -1
if ARGV[12] == '1' then
  n = redis.call('INCR', KEYS[6])
  if n == 1 then redis.call('PEXPIREAT', KEYS[6], ARGV[13]) end
  if n > tonumber(ARGV[14]) then
    redis.call('HINCRBY', KEYS[4], 'quota_rejected', 1)
    return {'quota', n}
  end
end
local expired = redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[10])
if expired > 0 then redis.call('HINCRBY', KEYS[4], 'expired', expired) end
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then
  local s = ''
  if cur then
    s = redis.call('GET', ARGV[8] .. cur) or ''
    -- Still pending and unexpired: the caller reuses it.
    if s ~= '' and redis.call('ZSCORE', KEYS[5], cur) then
      redis.call('HINCRBY', KEYS[4], 'reused', 1)
    end
  end
  return {'taken', cur or '', s, n}
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[5])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
-- KEYS[3], the change feed, is not written: it starts with the first change
-- (a stream costs ~4.7 KB even with one entry; waiters read from 0-0).
redis.call('ZADD', KEYS[5], ARGV[11], ARGV[2])
redis.call('HINCRBY', KEYS[4], 'created', 1)
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {'ok', n}
