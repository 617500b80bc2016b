-- KEYS: 1 link hash; ARGV: 1 discordId, 2 robloxId, 3 the prefix of the
--       reverse-index keys (one per Roblox id)
-- Sets one link in both lookup directions (an import), replacing the
-- Discord user's earlier link; not counted. Returns 1 if anything changed.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old == ARGV[2] then
  redis.call('SADD', ARGV[3] .. ARGV[2], ARGV[1])
  return 0
end
if old then redis.call('SREM', ARGV[3] .. old, ARGV[1]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', ARGV[3] .. ARGV[2], ARGV[1])
return 1
