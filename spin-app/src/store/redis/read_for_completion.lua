-- KEYS: 1 session, 2 link hash; ARGV: 1 discordId
return {redis.call('GET', KEYS[1]) or '', redis.call('HGET', KEYS[2], ARGV[1]) or ''}
