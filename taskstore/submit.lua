-- Idempotency-Key claim, cache check, coalescing, create and enqueue (or schedule) in one round
-- trip.
-- KEYS: cache key, task hash, stream of the kind, in-flight marker of the request, delayed set
--       of the kind, the kind's PENDING index, its DONE index, the shard's tallies (index.lua)
--       [, the Idempotency-Key's claim (where it shares the slot, i.e. one node)]
-- ARGV: task_id, request_json, signature, result_ttl, cache_ttl, max_queue, kind, coalesce (0|1),
--       run_at ('' = run now; else epoch seconds, the caller's clock as for retries)
--       [, fingerprint, claim ttl]
-- Returns {'cached', result_json} | {'coalesced', task_id} | {'full', length}
--       | {'queued', entry_id} | {'scheduled', run_at}
--       | {'held', task_id} | {'conflict', task_id}   (the claim, see claim.lua)
-- A scheduled request asks for a run at its time: it neither answers from the cache nor joins
-- (or becomes) an in-flight run.
local cache_key, key, stream, inflight, delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local pending_index, done_index, tallies, claim = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local task_id, request, signature = ARGV[1], ARGV[2], ARGV[3]
local result_ttl, cache_ttl, max_queue = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local kind, coalesce, run_at = ARGV[7], ARGV[8] == '1' and ARGV[9] == '', ARGV[9]
local stamp = now()

local function claimed(id)
  if claim then
    redis.call('SET', claim, ARGV[10] .. ' ' .. id, 'EX', tonumber(ARGV[11]))
  end
end

if claim then
  local held = redis.call('GET', claim)
  if held then
    local fingerprint, held_id = string.match(held, '^(%S+) (%S+)$')
    return {fingerprint == ARGV[10] and 'held' or 'conflict', held_id or ''}
  end
end
if run_at == '' then
  local cached = redis.call('GET', cache_key)
  if cached then
    redis.call('EXPIRE', cache_key, cache_ttl)
    redis.call('HSET', key, 'status', 'DONE', 'seq', 1, 'attempts', 0, 'result', cached, 'cached', 1,
      'request', request, 'signature', signature, 'kind', kind, 'created_at', stamp, 'updated_at', stamp)
    redis.call('EXPIRE', key, result_ttl)
    index_add(done_index, tallies, kind, 'DONE', task_id, stamp, result_ttl, '', 0)
    claimed(task_id)
    return {'cached', cached}
  end
end
if coalesce then
  -- The marker is removed by the move that ends its task, so it never names a FAILED or
  -- CANCELLED task (transition.lua).
  local running = redis.call('GET', inflight)
  if running then
    claimed(running)
    return {'coalesced', running}
  end
end
if max_queue > 0 then
  local length = redis.call('XLEN', stream)
  if length >= max_queue then
    return {'full', length}
  end
end
redis.call('HSET', key, 'status', 'PENDING', 'seq', 1, 'attempts', 0, 'request', request,
  'signature', signature, 'kind', kind, 'created_at', stamp, 'updated_at', stamp)
index_add(pending_index, tallies, kind, 'PENDING', task_id, stamp, result_ttl, '', 0)
claimed(task_id)
if run_at ~= '' then
  redis.call('HSET', key, 'run_at', run_at)
  redis.call('EXPIRE', key, result_ttl)
  -- The delayed set of retries: the retry scheduler enqueues the task once it is due.
  redis.call('ZADD', delayed, run_at, task_id)
  return {'scheduled', run_at}
end
redis.call('EXPIRE', key, result_ttl)
if coalesce then
  redis.call('SET', inflight, task_id, 'EX', result_ttl)
end
return {'queued', redis.call('XADD', stream, '*', 'task_id', task_id)}
