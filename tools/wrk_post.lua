-- wrk script: POST /tasks, a distinct prompt per request (so no answer comes from the cache).
--   wrk -t2 -c64 -d30s --latency -s tools/wrk_post.lua http://127.0.0.1:8000/tasks
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

function request()
  counter = counter + 1
  local body = '{"prompt": "wrk ' .. os.time() .. ' ' .. id .. ' ' .. counter .. '", "params": ' .. params .. '}'
  return wrk.format(nil, nil, nil, body)
end
