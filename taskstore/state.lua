-- Shared prefix of every taskcast script: the one place a task's public state is encoded.
-- Fields are stored ready to embed: numbers as JSON numbers, result as JSON text.
-- Time comes from the Redis server so every process stamps events with one clock.
local function now()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end

local function state_json(key, task_id)
  local f = redis.call('HMGET', key, 'status', 'seq', 'progress', 'attempts', 'result', 'error',
    'cached', 'created_at', 'updated_at', 'kind', 'run_at')
  if not f[1] then
    return false
  end
  local err = 'null'
  if f[6] then
    err = cjson.encode(f[6])
  end
  -- A hash written before kinds existed belongs to the default kind.
  return '{"task_id":' .. cjson.encode(task_id) .. ',"seq":' .. f[2] .. ',"status":"' .. f[1] ..
    '","kind":' .. cjson.encode(f[10] or 'default') ..
    ',"progress":' .. (f[3] or 'null') .. ',"attempts":' .. (f[4] or '0') ..
    ',"result":' .. (f[5] or 'null') .. ',"error":' .. err ..
    ',"cached":' .. (f[7] == '1' and 'true' or 'false') ..
    ',"created_at":' .. f[8] .. ',"updated_at":' .. f[9] .. ',"run_at":' .. (f[11] or 'null') .. '}'
end
