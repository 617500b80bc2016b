-- KEYS: 1 the metrics hash; ARGV: field, increment, field, increment, ...
for i = 1, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
return #ARGV / 2
