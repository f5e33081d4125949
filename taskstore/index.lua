-- Shared by submit and transition: the list indexes and the per-second end counts behind the
-- operations view (taskstore/index.py and taskstore/opsstats.py read them).
-- An index is a sorted set per kind and status, scored by created_at; entries older than the
-- result expiry are trimmed whenever their set is written, so each entry is removed once.
local function index_add(index, task_id, created, ttl)
  redis.call('ZADD', index, created, task_id)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. (tonumber(created) - ttl))
end

-- `indexes` maps each status to its index key (the caller passes them in KEYS).
local function index_move(indexes, key, task_id, from, to, ttl)
  if from == to then
    return
  end
  redis.call('ZREM', indexes[from], task_id)
  index_add(indexes[to], task_id, redis.call('HGET', key, 'created_at'), ttl)
end

-- One DONE or FAILED more in this second; the bucket (one hash per minute) expires by itself.
local function count_end(bucket, status, stamp)
  redis.call('HINCRBY', bucket, string.match(stamp, '^%d+') .. ':' .. status, 1)
  redis.call('EXPIRE', bucket, 360)
end
