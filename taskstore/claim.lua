-- Claim an Idempotency-Key for a request, or learn who holds it. Atomic, so of many concurrent
-- requests with one key exactly one is 'claimed' and goes on to create the task.
-- KEYS[1] the key's claim
-- ARGV: fingerprint of the request, task id to claim it for, ttl seconds
-- The claim holds "<fingerprint> <task id>" from the start, so the usual submit needs no second
-- write: a repeat that finds no such task yet waits for it (idempotency.py).
-- Returns {'claimed', task_id} | {'held', task_id} | {'conflict', task_id}.
local held = redis.call('GET', KEYS[1])
if not held then
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'EX', tonumber(ARGV[3]))
  return {'claimed', ARGV[2]}
end
local fingerprint, task_id = string.match(held, '^(%S+) (%S+)$')
if fingerprint ~= ARGV[1] then
  return {'conflict', task_id or ''}
end
return {'held', task_id}
