-- activate.lua: admit and count contacts in one billing period, or deny them at the limit.
--
-- KEYS[1]  members set of the period (SET of 14-byte contact keys)
-- KEYS[2]  counts hash of the workspace (HASH period_key -> active, period_key:limit -> limit)
-- ARGV[1]  period key (field of KEYS[2])
-- ARGV[2]  effective limit
-- ARGV[3]  unix ms at which the members set expires (end of the retention window)
-- ARGV[4..] contact keys, decided in this order
--
-- Returns { active_after, limit, code_1, ..., code_n } with code 0 = already active,
-- 1 = admitted, 2 = limit reached.
--
-- Why a script: "is the contact a member, is the count below the limit, add it" must be one
-- step. Between a read and a write in separate round trips, another replica could admit a
-- contact and the workspace would end over its limit; MULTI/EXEC cannot branch on what it
-- reads. Redis runs a script without interleaving anything else.
local members = KEYS[1]
local limit = tonumber(ARGV[2])
local before = redis.call('SCARD', members)
local active = before
local out = { 0, limit }
for i = 4, #ARGV do
  local key = ARGV[i]
  if active < limit then
    if redis.call('SADD', members, key) == 1 then
      active = active + 1
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  elseif redis.call('SISMEMBER', members, key) == 1 then
    out[#out + 1] = 0
  else
    out[#out + 1] = 2
  end
end
if active ~= before then
  if before == 0 then
    redis.call('PEXPIREAT', members, ARGV[3])
  end
  redis.call('HSET', KEYS[2], ARGV[1], active, ARGV[1] .. ':limit', limit)
end
out[1] = active
return out
