-- KEYS: 1 listing
-- ARGV: 1 cursor ms ('' = from the newest), 2 cursor sid, 3 limit, 4 session key prefix
-- Up to `limit` entries after the cursor, newest first (score, then sid,
-- descending), each with its record ('' = gone: its entry is removed).
-- Reply: sid, score, json, ...
local n = tonumber(ARGV[3])
local entries = {}
if ARGV[1] ~= '' then
  -- Same millisecond as the cursor: only smaller sids (already in reverse order).
  local same = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
  for _, sid in ipairs(same) do
    if #entries < n and sid < ARGV[2] then
      entries[#entries + 1] = {sid, ARGV[1]}
    end
  end
  local rest = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '-inf', 'WITHSCORES', 'LIMIT', 0, n)
  for i = 1, #rest, 2 do
    if #entries < n then entries[#entries + 1] = {rest[i], rest[i + 1]} end
  end
else
  local rest = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, n)
  for i = 1, #rest, 2 do entries[#entries + 1] = {rest[i], rest[i + 1]} end
end
local out = {}
for _, e in ipairs(entries) do
  local json = redis.call('GET', ARGV[4] .. e[1])
  if not json then
    redis.call('ZREM', KEYS[1], e[1])
    json = ''
  end
  out[#out + 1] = e[1]
  out[#out + 1] = e[2]
  out[#out + 1] = json
end
return out
