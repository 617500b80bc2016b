-- KEYS: 1 reuse slot, 2 session, 3 events, 4 stats, 5 pending, 6 quota window counter,
--       7 webhook, 8 webhook outbox, 9 listing, 10 the client's listing
-- ARGV: 1 expected sid ('' = empty), 2 sid, 3 session json, 4 px, 5 reuse px,
--       6 channel, 7 view json, 8 session key prefix, 9 pid, 10 now ms,
--       11 expiresAt ms, 12 charge ('1' = count this create), 13 window end ms,
--       14 quota limit, 15 '1' = the charged key's record is an instance's
--       cached copy, 16 the mark that copy was cached with
-- KEYS 11: the charged key's mark (key_mark_uncharged when not charged)
-- A key whose mark is revoked creates nothing (revocation marks the key
-- before it deletes the record, so this also stops a create that read the
-- record just before); a cached copy of a key whose record has changed
-- since (a quota change) creates nothing either, and the caller reads the
-- record again. Every other reply ends with the key's mark.
local mark = redis.call('GET', KEYS[11]) or ''
if string.sub(mark, 1, 1) == 'r' then return {'revoked'} end
if ARGV[15] == '1' and mark ~= ARGV[16] then return {'stale'} end
local n = -1
if ARGV[12] == '1' then
  n = redis.call('INCR', KEYS[6])
  if n == 1 then redis.call('PEXPIREAT', KEYS[6], ARGV[13]) end
  if n > tonumber(ARGV[14]) then
    redis.call('HINCRBY', KEYS[4], 'quota_rejected', 1)
    return {'quota', n, mark}
  end
end
sweep_expired(KEYS[5], KEYS[4], KEYS[7], KEYS[8], ARGV[10])
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
  return {'taken', cur or '', s, n, mark}
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[5])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
-- KEYS[3], the change feed, is not written: it starts with the first change
-- (a stream costs ~4.7 KB even with one entry; waiters read from 0-0).
redis.call('ZADD', KEYS[5], ARGV[11], ARGV[2])
-- The listings: this session by creation time; entries older than any
-- record that can still be stored (now - its lifetime) leave.
local oldest = '(' .. (tonumber(ARGV[10]) - tonumber(ARGV[4]))
for _, ix in ipairs({KEYS[9], KEYS[10]}) do
  redis.call('ZADD', ix, ARGV[10], ARGV[2])
  redis.call('ZREMRANGEBYSCORE', ix, '-inf', oldest)
  redis.call('PEXPIRE', ix, ARGV[4])
end
redis.call('HINCRBY', KEYS[4], 'created', 1)
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {'ok', n, mark}
