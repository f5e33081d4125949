-- KEYS[1] task hash; ARGV[1] task_id. Returns the state JSON, or false when missing.
return state_json(KEYS[1], ARGV[1])
