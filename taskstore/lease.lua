-- Renew the leases of a worker's running entries and report what became of their tasks.
-- KEYS: stream, then the task hash of each entry
-- ARGV: group, consumer, then the entry ids (in the order of the task hashes)
-- Returns, per entry, 'lost' when another consumer owns it now (or nobody: it was acked),
-- otherwise the task's status ('' when the hash is gone).
-- XCLAIM with min-idle 0 on our own entry only resets its idle time; checking the owner first
-- keeps a worker that paused past the visibility timeout from taking back a reclaimed entry.
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local mine = redis.call('XPENDING', stream, group, id, id, 1, consumer)
  if #mine == 0 then
    out[#out + 1] = 'lost'
  else
    redis.call('XCLAIM', stream, group, consumer, 0, id, 'JUSTID')
    out[#out + 1] = redis.call('HGET', KEYS[i - 1], 'status') or ''
  end
end
return out
