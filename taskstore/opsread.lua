#!lua flags=no-writes,allow-cross-slot-keys
-- The operations view's read of several shards at once (taskstore/tallies.py): on a single
-- node every shard, on a cluster the shards whose slots one primary holds, so one call per node
-- a second whatever the number of shards. The caller declares one of those keys (routing) and
-- names the rest in ARGV, which the flag above allows for keys of other slots of this node; a
-- call that meets a slot the node no longer has fails, and the caller reads shard by shard.
-- ARGV: group, head count, oldest score, number of fields F, F tally fields, then per shard:
--   tallies key ('' = none), D, D x (stream, delayed set, dead letters), H, H x index key;
--   a delayed set or dead letters given as '' are not read (-1 in their place)
-- Returns per shard {HMGET of the fields, {xlen, pending, delayed, dead} x D, ZRANGE x H}.
local group, head_count, oldest = ARGV[1], ARGV[2], ARGV[3]
local nf = tonumber(ARGV[4])
local fields = {unpack(ARGV, 5, 4 + nf)}
local i = 5 + nf
local out = {}
while i <= #ARGV do
  local tallies = ARGV[i]
  local shard = {{}, {}, {}}
  if tallies ~= '' and nf > 0 then
    shard[1] = redis.call('HMGET', tallies, unpack(fields))
  end
  local depths = tonumber(ARGV[i + 1])
  i = i + 2
  for d = 1, depths do
    local stream, delayed, dead = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local pending = redis.pcall('XPENDING', stream, group)
    if pending.err then
      -- No worker has created the group yet: nothing can be pending.
      if not string.find(pending.err, 'NOGROUP', 1, true) then
        return redis.error_reply(pending.err)
      end
      pending = {0}
    end
    local waiting = delayed ~= '' and redis.call('ZCARD', delayed) or -1
    local letters = dead ~= '' and redis.call('XLEN', dead) or -1
    shard[2][d] = {redis.call('XLEN', stream), pending[1], waiting, letters}
    i = i + 3
  end
  local heads = tonumber(ARGV[i])
  i = i + 1
  for h = 1, heads do
    shard[3][h] = redis.call('ZRANGE', ARGV[i], '+inf', oldest, 'BYSCORE', 'REV', 'LIMIT', 0, head_count,
      'WITHSCORES')
    i = i + 1
  end
  out[#out + 1] = shard
end
return out
