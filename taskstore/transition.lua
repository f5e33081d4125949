-- The single atomic move of a task: check, seq+1, write, expire, publish.
-- KEYS[1] task hash; the PENDING, RUNNING and target status indexes of the task's kind; the
--   shard's tallies (status counts and ends, index.lua); then, with a move to
--   FAILED and 'd' in ARGV[9], the dead-letter stream: the task's dead letter is added in the
--   same step, so no crash can leave a FAILED task without one; last, with 'i' in ARGV[9] (a move
--   to an end state, the request known), the request's in-flight marker: removed if it still
--   names this task, so an ended task is never coalesced onto; before it, with 'z' (a move to
--   CANCELLED), the kind's delayed set, which the task leaves. All share the task's slot.
-- ARGV: task_id, channel, wanted, expected_token, new_token, bump_attempts, ttl,
--       publish command (PUBLISH, or SPUBLISH on a cluster: the channel shares the hash's slot),
--       optional keys (a subset of 'd', 'z', 'i', in that order), then field/value pairs; an
--       empty value deletes the field.
-- Returns {1, state_json[, request, signature]} or {0, reason, current_status}.
local key = KEYS[1]
local task_id, channel, wanted = ARGV[1], ARGV[2], ARGV[3]
local expected, new_token, bump = ARGV[4], ARGV[5], ARGV[6]
local dead_letters = string.find(ARGV[9], 'd', 1, true) and KEYS[6] or nil
local inflight = string.find(ARGV[9], 'i', 1, true) and KEYS[#KEYS] or nil
local delayed = string.find(ARGV[9], 'z', 1, true) and KEYS[inflight and #KEYS - 1 or #KEYS] or nil

local current = redis.call('HGET', key, 'status')
if not current then
  return {0, 'missing', ''}
end
local moves = ALLOWED[current]
if not moves or not moves[wanted] then
  return {0, 'not allowed', current}
end
if expected ~= '' and redis.call('HGET', key, 'token') ~= expected then
  return {0, 'stale attempt', current}
end

redis.call('HINCRBY', key, 'seq', 1)
if bump == '1' then
  redis.call('HINCRBY', key, 'attempts', 1)
end
if new_token ~= '' then
  redis.call('HSET', key, 'token', new_token)
end
redis.call('HSET', key, 'status', wanted, 'updated_at', now())
for i = 10, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', key, ARGV[i])
  else
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
  end
end
redis.call('EXPIRE', key, tonumber(ARGV[7]))
local kind = index_move(KEYS[2], KEYS[3], KEYS[4], KEYS[5], key, task_id, current, wanted, tonumber(ARGV[7]))
if wanted == 'DONE' or wanted == 'FAILED' then
  count_end(KEYS[5], kind, wanted, now())
end

if delayed then
  redis.call('ZREM', delayed, task_id)
end
if inflight and redis.call('GET', inflight) == task_id then
  redis.call('DEL', inflight)
end

local state = state_json(key, task_id)
if dead_letters and wanted == 'FAILED' then
  local f = redis.call('HMGET', key, 'error', 'attempts', 'request')
  redis.call('XADD', dead_letters, '*', 'task_id', task_id, 'error', f[1] or '', 'attempts', f[2] or '0',
    'request', f[3] or '', 'time', now())
end
redis.call(ARGV[8], channel, state)
if new_token ~= '' then
  local req = redis.call('HMGET', key, 'request', 'signature')
  return {1, state, req[1] or '', req[2] or ''}
end
return {1, state}
