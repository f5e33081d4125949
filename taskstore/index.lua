-- Shared by submit and transition: the list indexes and the shard's tallies behind the
-- operations view (taskstore/index.py and taskstore/tallies.py read them).
-- An index is a sorted set per kind and status, scored by created_at. Entries older than the
-- result expiry are trimmed by a write now and then: when the task id (random hex) ends in
-- "00", one write in 256, so the trim costs nothing per task and each entry goes once.
-- The tallies are one hash per shard (all kinds), so a reader gets every count of the shard in
-- one HMGET instead of a ZCARD per index:
--   '<kind> <from>><to>'  members that left index `from` and entered index `to` ('' for
--                         neither: '>PENDING' is a submit, 'DONE>' a trim); an index's size is
--                         what entered it minus what left it, from the ZADD/ZREM replies, so it
--                         stays equal to its ZCARD. One HINCRBY per write, never two.
--   '<kind> <status>@<s % 360>'  DONE or FAILED ends in second s, as s * 2^20 + count: a slot
--                         holding an older second is restarted, so the ring needs no expiry and a
--                         reader knows the second of every count it reads.
local function tally(tallies, kind, from, to, n)
  if n > 0 and (from ~= '' or to ~= '') then
    redis.call('HINCRBY', tallies, kind .. ' ' .. from .. '>' .. to, n)
  end
end

local function index_trim(index, tallies, kind, status, task_id, created, ttl)
  if string.sub(task_id, -2) == '00' then
    tally(tallies, kind, status, '', redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. (tonumber(created) - ttl)))
  end
end

-- A new task (from = ''), or one entering `status` having left `from`'s index (`left`: 1 or 0).
local function index_add(index, tallies, kind, status, task_id, created, ttl, from, left)
  local added = redis.call('ZADD', index, created, task_id)
  tally(tallies, kind, left == 1 and from or '', added == 1 and status or '', 1)
  index_trim(index, tallies, kind, status, task_id, created, ttl)
end

-- Only PENDING and RUNNING tasks can move, so the caller passes those two indexes and the
-- target's; a progress update (RUNNING -> RUNNING) leaves the indexes alone.
-- Returns the task's kind (nil for a progress update).
local function index_move(pending, running, target, tallies, key, task_id, from, to, ttl)
  if from == to then
    return nil
  end
  local left = redis.call('ZREM', from == 'PENDING' and pending or running, task_id)
  local f = redis.call('HMGET', key, 'created_at', 'kind')
  -- A hash written before kinds existed belongs to the default kind (state.lua).
  local kind = f[2] or 'default'
  index_add(target, tallies, kind, to, task_id, f[1], ttl, from, left)
  return kind
end

-- One DONE or FAILED more in this second, in the shard's ring of the last 360 seconds.
local function count_end(tallies, kind, status, stamp)
  local second = tonumber(string.match(stamp, '^%d+'))
  local field = kind .. ' ' .. status .. '@' .. (second % 360)
  local value = redis.call('HINCRBY', tallies, field, 1)
  if math.floor(value / 1048576) ~= second then
    redis.call('HSET', tallies, field, string.format('%.0f', second * 1048576 + 1))
  end
end
