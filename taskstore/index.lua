-- Shared by submit and transition: the list indexes and the per-second end counts behind the
-- operations view (taskstore/index.py and taskstore/opsstats.py read them).
-- An index is a sorted set per kind and status, scored by created_at. Entries older than the
-- result expiry are trimmed by a write now and then: when the task id (random hex) ends in
-- "00", one write in 256, so the trim costs nothing per task and each entry goes once.
local function index_add(index, task_id, created, ttl)
  redis.call('ZADD', index, created, task_id)
  if string.sub(task_id, -2) == '00' then
    redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. (tonumber(created) - ttl))
  end
end

-- Only PENDING and RUNNING tasks can move, so the caller passes those two indexes and the
-- target's; a progress update (RUNNING -> RUNNING) leaves the indexes alone.
local function index_move(pending, running, target, key, task_id, from, to, ttl)
  if from == to then
    return
  end
  redis.call('ZREM', from == 'PENDING' and pending or running, task_id)
  index_add(target, task_id, redis.call('HGET', key, 'created_at'), ttl)
end

-- One DONE or FAILED more in this second; the bucket (one hash per minute) expires by itself,
-- its TTL set with each second's first count.
local function count_end(bucket, status, stamp)
  if redis.call('HINCRBY', bucket, string.match(stamp, '^%d+') .. ':' .. status, 1) == 1 then
    redis.call('EXPIRE', bucket, 360)
  end
end
