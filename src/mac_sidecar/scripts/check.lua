-- check.lua: what activate.lua would answer for one contact, changing nothing.
--
-- KEYS[1]  members set of the period
-- ARGV[1]  effective limit
-- ARGV[2]  contact key
--
-- Returns { active, limit, code } with code 0 = already active, 3 = within limit,
-- 2 = limit reached.
--
-- Why a script: membership and count are read in one step, so the answer is one consistent
-- snapshot, in one round trip.
local members = KEYS[1]
local limit = tonumber(ARGV[1])
local active = redis.call('SCARD', members)
local code
if redis.call('SISMEMBER', members, ARGV[2]) == 1 then
  code = 0
elseif active < limit then
  code = 3
else
  code = 2
end
return { active, limit, code }
