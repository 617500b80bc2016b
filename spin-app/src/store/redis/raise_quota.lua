-- KEYS: 1 a key's counter of one quota window; ARGV: 1 the count, 2 when
--       the window ends (unix ms)
-- Raises the counter to the count if it is lower (an import), expiring
-- with its window as a create's counter does. Returns 1 if raised.
local n = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') >= n then return 0 end
redis.call('SET', KEYS[1], n, 'PXAT', ARGV[2])
return 1
