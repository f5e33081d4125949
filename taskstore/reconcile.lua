-- Make the tallies of one shard agree with its indexes (index.lua): each index's count (what
-- entered it minus what left it) is set to its ZCARD, the difference booked as 'seed' entries
-- or trims. Run once per API process and shard before the tallies are trusted: it counts the
-- indexes of a deployment that ran before the tallies existed, and writes nothing otherwise.
-- KEYS[1] the shard's tallies; then, kind by kind (ARGV order), the index of each status
-- ARGV: number of statuses S, S statuses, then the kinds
-- Returns how many indexes it adjusted.
local ns = tonumber(ARGV[1])
local counts = {}
local flat = redis.call('HGETALL', KEYS[1])
for f = 1, #flat, 2 do
  local kind, from, to = string.match(flat[f], '^(%S+) (%a*)>(%u*)$')
  if kind then
    local n = tonumber(flat[f + 1])
    counts[kind .. ' ' .. to] = (counts[kind .. ' ' .. to] or 0) + n
    counts[kind .. ' ' .. from] = (counts[kind .. ' ' .. from] or 0) - n
  end
end
local adjusted = 0
for k = 2 + ns, #ARGV do
  local kind = ARGV[k]
  for s = 1, ns do
    local status = ARGV[1 + s]
    local size = redis.call('ZCARD', KEYS[1 + (k - 2 - ns) * ns + s])
    local missing = size - (counts[kind .. ' ' .. status] or 0)
    if missing > 0 then
      redis.call('HINCRBY', KEYS[1], kind .. ' seed>' .. status, missing)
    elseif missing < 0 then
      redis.call('HINCRBY', KEYS[1], kind .. ' ' .. status .. '>', -missing)
    end
    if missing ~= 0 then
      adjusted = adjusted + 1
    end
  end
end
return adjusted
