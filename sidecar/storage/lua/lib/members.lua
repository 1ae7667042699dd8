-- lib/members.lua: who is counted in the period, as this call sees it, and the count it
-- leaves behind.
--
-- KEYS: none of its own; decide.lua's input.key.members (the period's members set) and
-- input.key.counts (the counts hash: period_key -> active, period_key:limit, period_key:plan
-- and period_key:packs -> the limit, plan and packs at the last count written).
-- ARGV: none of its own; input.arg.period_key and input.arg.expire_at_ms of decide.lua.
-- Reply: none: a library of functions (is_member, write_count).
-- Why in a script: who is counted is read in the same step that counts the next contact
-- (decide.lua), so two calls cannot both take the last free place, and the count written is
-- the set's size at that step.
-- Uses: nothing.

-- Whether `key` is counted. A dry run counts nobody, so it remembers whom it would have
-- counted (state.seen): a contact twice in one batch would be counted once.
local function is_member(input, state, key)
  return state.seen[key] or redis.call('SISMEMBER', input.key.members, key) == 1
end

-- Write the period's count, limit, plan and packs to the counts hash when the count moved,
-- and give a members set made (or emptied and made again) by this call its expiry. Returns
-- the count.
local function write_count(input, state)
  local size = redis.call('SCARD', input.key.members)
  local period_key = input.arg.period_key
  if size ~= state.start.active then
    redis.call('HSET', input.key.counts, period_key, size, period_key .. ':limit', state.limit,
      period_key .. ':plan', input.terms.plan, period_key .. ':packs', input.terms.packs)
  end
  if (state.start.active == 0 or state.removed) and size > 0 then
    redis.call('PEXPIREAT', input.key.members, input.arg.expire_at_ms)
  end
  return size
end
