-- KEYS: 1 link hash, 2 stats; ARGV: 1 'discord' or 'roblox', 2 the id,
--       3 the prefix of the reverse-index keys (one per Roblox id)
-- Erases the links of one Discord user or of one Roblox account, in both
-- lookup directions, and counts them; returns discordId, robloxId pairs.
local out = {}
if ARGV[1] == 'discord' then
  local r = redis.call('HGET', KEYS[1], ARGV[2])
  if r then
    redis.call('HDEL', KEYS[1], ARGV[2])
    redis.call('SREM', ARGV[3] .. r, ARGV[2])
    out = {ARGV[2], r}
  end
else
  local set = ARGV[3] .. ARGV[2]
  for _, d in ipairs(redis.call('SMEMBERS', set)) do
    if redis.call('HGET', KEYS[1], d) == ARGV[2] then
      redis.call('HDEL', KEYS[1], d)
      out[#out + 1] = d
      out[#out + 1] = ARGV[2]
    end
  end
  redis.call('DEL', set)
end
if #out > 0 then redis.call('HINCRBY', KEYS[2], 'links_erased', #out / 2) end
return out
