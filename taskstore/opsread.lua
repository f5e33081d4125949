#!lua flags=no-writes,allow-cross-slot-keys
-- The operations view's read of several shards at once (taskstore/tallies.py): on a single
-- node every shard, on a cluster the shards whose slots one primary holds, so one call per node
-- a second whatever the number of shards. The caller declares one of those keys (routing) and
-- names the rest in ARGV, which the flag above allows for keys of other slots of this node; a
-- call that meets a slot the node no longer has fails, and the caller reads shard by shard.
-- ARGV: head count, oldest score, rows wanted R, number of fields F, F tally fields, then per
--   shard: tallies key ('' = none), S, S x (delayed set, dead letters),
--          H, H x (index key, rank, entered, I, I x field, O, O x field),
--          T, T x (task hash, task id)
-- Returns per shard {HMGET of the fields, {delayed, first due or false, dead} x S,
--   {index key, its ZRANGE} x the indexes read, {state JSON or false} x T}.
-- The T tasks are rows a live list has just subscribed to: their states, read after the
-- subscription, are what the list shows (state_json, the shared prefix of taskstore/state.lua).
-- The queue streams are not read: what waits in them is the PENDING count (tallies) minus the
-- delayed ones, so the reader's cost does not follow how busy the queues are.
-- An index's head is read only when its tallies, read in this call, say something entered it
-- since the caller's last read of it (`entered` then; I and O name the fields it is entered
-- and left by, as positions among the F fields) and it is not empty. By rank (the caller's:
-- the longest unread first), until they may hold R new members (the rows the lists may
-- take): under load one index, however many move; when few tasks move, every index they
-- entered, so a task that went from PENDING to FAILED between two reads still shows at once.
local head_count, oldest, rows = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local nf = tonumber(ARGV[4])
local fields = {unpack(ARGV, 5, 4 + nf)}
local i = 5 + nf
local out, stale = {}, {}

-- The sum of the `n` tally values whose positions are ARGV[at], ARGV[at + 1] ...
local function total(values, at, n)
  local sum = 0
  for k = at, at + n - 1 do
    sum = sum + (tonumber(values[tonumber(ARGV[k])]) or 0)
  end
  return sum
end

while i <= #ARGV do
  local tallies = ARGV[i]
  local shard = {{}, {}, {}, {}}
  if tallies ~= '' and nf > 0 then
    shard[1] = redis.call('HMGET', tallies, unpack(fields))
  end
  local sidelined = tonumber(ARGV[i + 1])
  i = i + 2
  for s = 1, sidelined do
    local delayed, dead = ARGV[i], ARGV[i + 1]
    local waiting = redis.call('ZCARD', delayed)
    -- When the first one is due the promoter moves it onto the stream: the reader looks again then.
    local due = false
    if waiting > 0 then
      due = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')[2]
    end
    shard[2][s] = {waiting, due, redis.call('XLEN', dead)}
    i = i + 2
  end
  local candidates = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, candidates do
    local key, rank, entered_then = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    local ins = tonumber(ARGV[i + 3])
    local entered = total(shard[1], i + 4, ins)
    i = i + 4 + ins
    local outs = tonumber(ARGV[i])
    local size = entered - total(shard[1], i + 1, outs)
    i = i + 1 + outs
    -- At most as many new members as entered, as it holds, as a head holds.
    local new = math.min(math.max(1, entered - entered_then), size, head_count)
    if entered ~= entered_then and new > 0 then
      stale[#stale + 1] = {shard[3], key, rank, new}
    end
  end
  local states = tonumber(ARGV[i])
  for t = 1, states do
    shard[4][t] = state_json(ARGV[i + 2 * t - 1], ARGV[i + 2 * t])
  end
  i = i + 1 + 2 * states
  out[#out + 1] = shard
end

table.sort(stale, function(a, b)
  return a[3] < b[3]
end)
for _, index in ipairs(stale) do
  if rows <= 0 then
    break
  end
  local heads = index[1]
  heads[#heads + 1] = index[2]
  heads[#heads + 1] = redis.call('ZRANGE', index[2], '+inf', oldest, 'BYSCORE', 'REV', 'LIMIT', 0, head_count,
    'WITHSCORES')
  rows = rows - index[4]
end
return out
