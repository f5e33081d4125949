-- wrk script: POST /tasks, a distinct prompt per request (so no answer comes from the cache).
--   wrk -t2 -c64 -d30s --latency -s tools/wrk_post.lua http://127.0.0.1:8000/tasks
--   wrk ... -s tools/wrk_post.lua http://127.0.0.1:8000/tasks -- key    (+ a new Idempotency-Key each)
-- WRK_PARAMS='{"duration": 0.5, "steps": 4}' sends those params (default {}).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

local counter = 0
local params = os.getenv("WRK_PARAMS") or "{}"
local with_key = false

function init(args)
  with_key = args[1] == "key"
end

function request()
  counter = counter + 1
  local tag = os.time() .. ' ' .. id .. ' ' .. counter
  local body = '{"prompt": "wrk ' .. tag .. '", "params": ' .. params .. '}'
  if with_key then
    local headers = {["Content-Type"] = "application/json", ["Idempotency-Key"] = '"wrk ' .. tag .. '"'}
    return wrk.format(nil, nil, headers, body)
  end
  return wrk.format(nil, nil, nil, body)
end
