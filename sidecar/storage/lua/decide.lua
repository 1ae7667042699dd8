-- decide.lua: resolve contacts to identities and decide them in one billing period; admit and
-- count them unless dry_run. Check (dry run), Activate and ActivateBatch all run this one
-- script, so Check answers exactly what Activate would.
--
-- KEYS[1]  members set of the period      (SET of 14-byte identity keys)
-- KEYS[2]  counts hash                    (HASH period_key -> active, period_key:limit -> limit)
-- KEYS[3]  subscription hash              (HASH; see set_subscription.lua)
-- KEYS[4]  trial hash                     (HASH until, limit, plan, major, ended,
--                                          granted:<trial plan>:<major>)
-- KEYS[5]  flags hash of the period       (HASH t<pct>:<limit>, lr:<limit>, c:<key>:<key>:
--                                          events already recorded)
-- KEYS[6]  events stream                  (STREAM)
-- KEYS[7]  links hash                     (HASH identifier key -> identity key; an identity
--                                          that has links maps to itself)
-- KEYS[8]  exempt set                     (SET of identity and identifier keys)
-- ARGV[1]  period key
-- ARGV[2]  period name, for events (2026-11)
-- ARGV[3]  now, unix ms
-- ARGV[4]  unix ms at which the period's members and flags expire
-- ARGV[5]  dry run: 1 = decide only, write nothing
-- ARGV[6]  limit without a subscription
-- ARGV[7]  plan without a subscription
-- ARGV[8]  trial plan without a subscription ('' = none)
-- ARGV[9]  trial limit without a subscription
-- ARGV[10] trial days without a subscription
-- ARGV[11] thresholds, percent, comma separated (80,100)
-- ARGV[12] events stream max length (approximate)
-- ARGV[13] workspace id, for events
-- ARGV[14] subscription version the period was computed with ('' = no subscription)
-- ARGV[15..] contacts, each as: n, then n primary identifier keys in precedence order
--           (id, email, phone), then the visitor key or ''
--
-- Returns { active, limit, trial_until_ms, plan, events_written, then per contact: code,
-- identity key, flags } (a dry run answers the usage as it stands). Codes: 0 already active,
-- 1 admitted, 2 limit reached (denied), 3 within limit (dry run), 4 trial started (admitted),
-- 5 over the limit but allowed by shadow mode (not counted), 6 exempt. Flags: 1 identity
-- conflict, 2 a counted visitor was this contact (the count dropped by one).
-- When the subscription's version is not ARGV[14], nothing is decided and the reply is
-- { -1, timezone, starts_at_ms, version }: the caller computes the period again and retries.
--
-- Uses lib/identity.lua (root_of, read_contacts).
--
-- Why one script: "which identity is this, is it counted, is the count below the limit, may
-- a trial start, count it, record what it crosses" must be one step. Split over round trips,
-- two replicas could both admit the last free place, both grant the trial, or link one
-- identifier to two identities; MULTI/EXEC cannot branch on what it reads.
local members, counts, sub, trial, flags, events, links, exempt =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local period_key, period_name = ARGV[1], ARGV[2]
local now, expire_at = tonumber(ARGV[3]), ARGV[4]
local dry = ARGV[5] == '1'
local workspace = ARGV[13]

local s = redis.call('HMGET', sub, 'limit', 'plan', 'trial_plan', 'trial_limit', 'trial_days',
  'major', 'shadow', 'version', 'timezone', 'starts_at')
if (s[8] or '') ~= ARGV[14] then
  return { -1, s[9] or 'UTC', s[10] or '0', s[8] or '' }
end
local own_limit, plan, trial_plan, trial_limit, trial_days, major, shadow
if s[1] then
  own_limit, plan = tonumber(s[1]), s[2]
  trial_plan, trial_limit, trial_days = s[3] or '', tonumber(s[4] or '0'), tonumber(s[5] or '30')
  major, shadow = s[6] or '0', s[7] == '1'
else
  own_limit, plan = tonumber(ARGV[6]), ARGV[7]
  trial_plan, trial_limit, trial_days = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
  major, shadow = '0', false
end

local t = redis.call('HMGET', trial, 'until', 'limit', 'ended')
local trial_until = tonumber(t[1] or '0')
local trial_on = trial_until > now
local limit = own_limit
if trial_on then
  limit = math.max(own_limit, tonumber(t[2]))
end

local thresholds = {}
for pct in string.gmatch(ARGV[11], '%d+') do
  thresholds[#thresholds + 1] = tonumber(pct)
end
local maxlen = ARGV[12]
local written = 0
local flags_touched = false
local before = redis.call('SCARD', members)
local active = before
local limit_before = limit
local trial_until_before = trial_on and trial_until or 0

local function emit(kind, count, at, threshold)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
    'type', kind, 'workspace', workspace, 'period', period_name, 'threshold', threshold,
    'active', count, 'limit', limit, 'at', at)
  written = written + 1
end

local function once(flag)
  -- true the first time a flag is raised in this period
  if redis.call('HSETNX', flags, flag, now) == 1 then
    flags_touched = true
    return true
  end
  return false
end

if not trial_on and trial_until > 0 and t[3] ~= '1' and not dry then
  redis.call('HSET', trial, 'ended', '1')
  emit('TRIAL_ENDED', active, trial_until, 0)
end

local function root(key)
  return root_of(links, key, not dry)
end

local function is_member(key)
  return redis.call('SISMEMBER', members, key) == 1
end

-- Resolve one contact: its identity, whether it conflicts, whether a counted visitor folds in.
-- An identifier is known when it has links or is counted this period; a visitor with links
-- (identified before) is known too, after the primaries.
local removed = false
local function resolve(prim, visitor)
  local n = #prim
  if n == 1 and not visitor then
    return (root(prim[1])), false, false
  end
  local roots, known = {}, {}
  local distinct, order, identity = {}, {}, nil
  local function note(key)
    if not distinct[key] then
      distinct[key] = true
      order[#order + 1] = key
    end
  end
  for i = 1, n do
    local linked
    roots[i], linked = root(prim[i])
    known[i] = linked or is_member(roots[i])
    if known[i] then
      note(roots[i])
    end
  end
  local vroot, vlinked
  if visitor then
    vroot, vlinked = root(visitor)
    if vlinked then
      note(vroot)
    end
  end
  if n == 0 then
    return vroot, false, false
  end
  identity = order[1] or roots[1]
  local conflict = #order >= 2
  local absorb = visitor and not vlinked and vroot ~= identity
  if not dry then
    local wrote = false
    for i = 1, n do
      if not known[i] and roots[i] ~= identity then
        redis.call('HSET', links, prim[i], identity)
        wrote = true
      end
    end
    if absorb then
      redis.call('HSET', links, visitor, identity)
      wrote = true
    end
    if wrote then
      redis.call('HSETNX', links, identity, identity)
    end
  end
  local visitor_merged = false
  if absorb and is_member(vroot) then
    visitor_merged = true
    if not dry then
      redis.call('SREM', members, vroot)
      removed = true
    end
    active = active - 1
  end
  if conflict and not dry then
    -- one event per pair of identities and period
    local other = order[2]
    local pair = identity < other and (identity .. other) or (other .. identity)
    if once('c:' .. pair) then
      emit('IDENTITY_CONFLICT', active, now, 0)
    end
  end
  return identity, conflict, visitor_merged
end

-- Exempt: the identity, or any identifier of the request, was marked exempt. An exemption
-- found through an identifier is carried to the identity it now belongs to.
local function is_exempt(identity, prim, visitor)
  if redis.call('SISMEMBER', exempt, identity) == 1 then
    return true
  end
  local keys = { unpack(prim) }
  keys[#keys + 1] = visitor or nil
  for _, key in ipairs(keys) do
    if key ~= identity and redis.call('SISMEMBER', exempt, key) == 1 then
      if not dry then
        redis.call('SADD', exempt, identity)
      end
      return true
    end
  end
  return false
end

local out = { 0, 0, 0, plan, 0 }

local function crossed()
  for _, pct in ipairs(thresholds) do
    if active * 100 >= pct * limit and (active - 1) * 100 < pct * limit then
      if once('t' .. pct .. ':' .. limit) then
        emit('THRESHOLD_CROSSED', active, now, pct)
      end
    end
  end
end

local function decide(identity, merged, prim, visitor)
  if is_exempt(identity, prim, visitor) then
    return 6 -- never counted: a visitor it turns out to be is not counted either
  end
  if merged then
    -- the person was counted as a visitor: counted once now, under the identity
    if not is_member(identity) then
      active = active + 1
      if not dry then
        redis.call('SADD', members, identity)
      end
    end
    return 0
  end
  if active < limit and not dry then
    -- below the limit SADD alone tells new from already counted
    if redis.call('SADD', members, identity) == 1 then
      active = active + 1
      crossed()
      return 1
    end
    return 0
  end
  if is_member(identity) then
    return 0
  end
  if active < limit then
    active = active + 1
    return 3
  end
  if not trial_on and trial_plan ~= '' and trial_limit > active
      and redis.call('HEXISTS', trial, 'granted:' .. trial_plan .. ':' .. major) == 0 then
    -- the first new contact over the limit starts the fair-usage trial of the next plan,
    -- once per platform major release
    trial_on = true
    trial_until = now + trial_days * 86400000
    limit = math.max(own_limit, trial_limit)
    active = active + 1
    if not dry then
      redis.call('HSET', trial, 'until', trial_until, 'limit', trial_limit, 'plan', trial_plan,
        'major', major, 'started', now, 'ended', '0',
        'granted:' .. trial_plan .. ':' .. major, now)
      emit('TRIAL_STARTED', active - 1, now, 0)
      redis.call('SADD', members, identity)
      crossed()
    end
    return 4
  end
  if not dry and once('lr:' .. limit) then
    emit('LIMIT_REACHED', active, now, 0)
  end
  return shadow and 5 or 2
end

for _, contact in ipairs(read_contacts(15)) do
  local identity, conflict, merged = resolve(contact[1], contact[2])
  local code = decide(identity, merged, contact[1], contact[2])
  out[#out + 1] = code
  out[#out + 1] = identity
  out[#out + 1] = (conflict and 1 or 0) + (merged and 2 or 0)
end

if not dry then
  local size = redis.call('SCARD', members)
  if size ~= before then
    redis.call('HSET', counts, period_key, size, period_key .. ':limit', limit)
  end
  if (before == 0 or removed) and size > 0 then
    -- a set created (or emptied and created again) here gets its expiry here
    redis.call('PEXPIREAT', members, expire_at)
  end
  active = size
  if flags_touched then
    redis.call('PEXPIREAT', flags, expire_at)
  end
end

if dry then
  out[1], out[2], out[3] = before, limit_before, trial_until_before
else
  out[1], out[2] = active, limit
  out[3] = trial_on and trial_until or 0
end
out[5] = written
return out
