-- Admission alone (admit_fn.lua): cache hits, followers, token counts and the submissions that claim a cache
-- lead between admission and creation.
return admit_request()
