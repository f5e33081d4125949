-- Change an Idempotency-Key claim, if it still names the task the caller expects: point it at
-- another task (the in-flight one a request was coalesced onto, or a new one that replaces a
-- task never created), or drop it ('' : the submit failed, a retry may claim the key again).
-- KEYS[1] the key's claim
-- ARGV: fingerprint, expected task id, new task id ('' = drop), ttl seconds
-- Returns 1 when changed, 0 when the claim holds something else (or nothing) now.
if redis.call('GET', KEYS[1]) ~= ARGV[1] .. ' ' .. ARGV[2] then
  return 0
end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[3], 'EX', tonumber(ARGV[4]))
end
return 1
