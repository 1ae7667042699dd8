-- lib/terms.lua: what applies to a decision: the subscription's numbers, else the service's.
--
-- KEYS: none of its own; read_subscription is given decide.lua's subscription hash
-- (input.key.subscription; its fields are set_subscription.lua's).
-- ARGV: none of its own; terms_of falls back on decide.lua's limit, plan, trial_plan,
-- trial_limit, trial_days and thresholds (input.arg).
-- Reply: none: a library of functions (read_subscription, recorded_terms, terms_of).
-- Why in a script: the terms are read in the same step as the decision made under them, so
-- a subscription changed meanwhile is either wholly seen or not at all.
-- Uses: lib/fields.lua (read_fields).

-- The subscription hash's fields a decision reads (false where missing).
local function read_subscription(key)
  return read_fields(key, 'limit', 'plan', 'trial_plan', 'trial_limit', 'trial_days', 'major',
    'shadow', 'version', 'timezone', 'starts_at', 'default_region', 'thresholds', 'packs',
    'overage_percent', 'flood_rate', 'flood_action')
end

-- The terms as the subscription (or the service) sets them now.
local function current_terms(sub, arg)
  -- the workspace's own thresholds, else the service's
  local thresholds = {}
  local own = sub.limit and sub.thresholds or ''
  for pct in string.gmatch(own ~= '' and own or arg.thresholds, '%d+') do
    thresholds[#thresholds + 1] = tonumber(pct)
  end
  if sub.limit then
    return { limit = tonumber(sub.limit), plan = sub.plan, trial_plan = sub.trial_plan or '',
      trial_limit = tonumber(sub.trial_limit or '0'), trial_days = tonumber(sub.trial_days or '30'),
      major = sub.major or '0', shadow = sub.shadow == '1', thresholds = thresholds,
      packs = tonumber(sub.packs or '0'), overage_percent = tonumber(sub.overage_percent or '0'),
      flood_rate = tonumber(sub.flood_rate or '0'), flood_hold = sub.flood_action == 'HOLD' }
  end
  return { limit = tonumber(arg.limit), plan = arg.plan, trial_plan = arg.trial_plan,
    trial_limit = tonumber(arg.trial_limit), trial_days = tonumber(arg.trial_days), major = '0',
    shadow = false, thresholds = thresholds, packs = 0, overage_percent = 0, flood_rate = 0,
    flood_hold = false }
end

-- The limit, plan and packs recorded with a period's count (lib/members.lua, write_count), or
-- nil before its first count: what applied to the period, whatever the subscription says now.
local function recorded_terms(counts, period_key)
  local found = redis.call('HMGET', counts, period_key .. ':limit', period_key .. ':plan',
    period_key .. ':packs')
  if found[1] and found[2] then
    return { limit = tonumber(found[1]), plan = found[2], packs = tonumber(found[3] or '0') }
  end
  return nil
end

-- The terms: limit, plan, trial_plan ('' = none), trial_limit, trial_days, major, shadow,
-- thresholds (a list of percents), packs, overage_percent, flood_rate (the flood guard's
-- new_per_minute, 0 = none) and flood_hold (its action is HOLD): the subscription's when it
-- has a limit, else the service's (no packs, no overage, no guard); `recorded`
-- (recorded_terms), when given, replaces the limit, plan and packs (the guard stays the
-- current one).
local function terms_of(sub, arg, recorded)
  local terms = current_terms(sub, arg)
  if recorded then
    terms.limit, terms.plan, terms.packs = recorded.limit, recorded.plan, recorded.packs
  end
  return terms
end
