-- KEYS: 1 the key's waiters zset
-- ARGV: 1 change-feed key prefix (the PID's), 2 key id, 3 feed px
-- Wakes every waiter of a revoked key: a notice without a state on the
-- change feed of the session each waits on (a waiter id is `<sid>.<token>`),
-- so each confirms its lease, finds it gone and ends. Then the leases go.
for _, w in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local sid = string.match(w, '^([^.]+)%.')
  if sid then
    local feed = ARGV[1] .. sid
    redis.call('XADD', feed, 'MAXLEN', '~', '8', '*', 'revoked', ARGV[2])
    redis.call('PEXPIRE', feed, ARGV[3], 'NX')
  end
end
return redis.call('DEL', KEYS[1])
