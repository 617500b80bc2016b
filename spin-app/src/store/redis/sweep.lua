-- Prepended to the scripts that sweep a PID's pending set (create, stats).
-- Counts the pending sessions past their expiry as expired, once, and puts
-- their `session.expired` event in the webhook outbox when the PID's
-- webhook wants it (due at the expiry).
local function sweep_expired(pending, stats, webhook, outbox, now)
  local due = redis.call('ZRANGEBYSCORE', pending, '-inf', now, 'WITHSCORES')
  if #due == 0 then return end
  redis.call('ZREMRANGEBYSCORE', pending, '-inf', now)
  redis.call('HINCRBY', stats, 'expired', #due / 2)
  local ev = redis.call('HGET', webhook, 'events')
  if ev and string.find(ev, ' session.expired ', 1, true) then
    for i = 1, #due, 2 do
      redis.call('ZADD', outbox, 'NX', due[i + 1], 'session.expired|' .. due[i])
    end
  end
end
