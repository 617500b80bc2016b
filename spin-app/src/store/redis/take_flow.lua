-- KEYS: 1 the session's flow hash; ARGV: 1 state hash
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then
  return false
end
local record = redis.call('HGET', KEYS[1], 'record')
redis.call('HDEL', KEYS[1], 'state', 'record')
return record
