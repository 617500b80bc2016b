-- KEYS: 1 a key's mark; ARGV: 1 'bump', 'revoke' or 'issue', 2 how long a
--       revoked mark stays (ms)
-- A mark is '<n>' ('' = 0 when never set) or, once revoked, 'r<n>'. It
-- changes whenever the key's record does, so an instance's cached copy of
-- the record stops passing CREATE's check: 'bump' (a changed record) counts
-- up unless revoked (a change racing a revocation cannot revive the key),
-- 'revoke' marks it revoked for a while, 'issue' (a record written under
-- this key id again, by an import) counts up from either, so the new mark
-- is one no cached copy holds. Returns 1 if the mark changed.
local cur = redis.call('GET', KEYS[1]) or ''
local revoked = string.sub(cur, 1, 1) == 'r'
local n = tonumber(string.match(cur, '%d+$') or '0')
if ARGV[1] == 'revoke' then
  if revoked then return 0 end
  redis.call('SET', KEYS[1], 'r' .. n, 'PX', ARGV[2])
elseif ARGV[1] == 'bump' and revoked then
  return 0
else
  redis.call('SET', KEYS[1], tostring(n + 1))
end
return 1
