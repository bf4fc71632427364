-- One job's end in one round trip: settle_fn.lua and finish_fn.lua are prepended (shared/jobs.py).
return finish(KEYS, ARGV)
