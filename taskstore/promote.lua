-- Move retries that are due from the delayed set back onto the stream, atomically, so that
-- several workers running this at once never enqueue one task twice.
-- Order: XADD '*' appends, so a due retry queues behind every entry already waiting, and due
-- retries queue among themselves by due time. Work is served in the order it became ready:
-- a task that has waited longer starts before a retry that became due later.
-- KEYS: delayed set, stream
-- ARGV: now (seconds, the caller's clock), most to move
-- Returns the number moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, task_id in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'task_id', task_id)
  redis.call('ZREM', KEYS[1], task_id)
end
return #due
