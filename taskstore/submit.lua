-- Cache check + create + enqueue in one round trip.
-- KEYS: cache key, task hash, stream, the kind's PENDING index, its DONE index
-- ARGV: task_id, request_json, signature, result_ttl, cache_ttl, max_queue
-- Returns {'cached', result_json} | {'full', length} | {'queued', entry_id}.
local cache_key, key, stream = KEYS[1], KEYS[2], KEYS[3]
local task_id, request, signature = ARGV[1], ARGV[2], ARGV[3]
local result_ttl, cache_ttl, max_queue = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local stamp = now()

local cached = redis.call('GET', cache_key)
if cached then
  redis.call('EXPIRE', cache_key, cache_ttl)
  redis.call('HSET', key, 'status', 'DONE', 'seq', 1, 'attempts', 0, 'result', cached, 'cached', 1,
    'request', request, 'signature', signature, 'created_at', stamp, 'updated_at', stamp)
  redis.call('EXPIRE', key, result_ttl)
  index_add(KEYS[5], task_id, stamp, result_ttl)
  return {'cached', cached}
end
if max_queue > 0 then
  local length = redis.call('XLEN', stream)
  if length >= max_queue then
    return {'full', length}
  end
end
redis.call('HSET', key, 'status', 'PENDING', 'seq', 1, 'attempts', 0, 'request', request,
  'signature', signature, 'created_at', stamp, 'updated_at', stamp)
redis.call('EXPIRE', key, result_ttl)
index_add(KEYS[4], task_id, stamp, result_ttl)
return {'queued', redis.call('XADD', stream, '*', 'task_id', task_id)}
