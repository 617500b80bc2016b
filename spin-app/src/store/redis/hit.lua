-- KEYS: 1 window counter; ARGV: 1 window end ms
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1])
end
return n
