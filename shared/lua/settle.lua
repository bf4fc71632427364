-- settle.lua on its own (cancel and release paths): settle_fn.lua is prepended by shared/limits.py.
return settle(KEYS, ARGV)
