-- decide.lua: resolve contacts to identities and decide them in one billing period; admit and
-- count them unless dry_run. Check (dry run), Activate and ActivateBatch all run this one
-- script, so Check answers exactly what Activate would.
--
-- KEYS[1]  members set of the period      (SET of 14-byte identity keys)
-- KEYS[2]  counts hash                    (HASH period_key -> active, period_key:limit -> limit)
-- KEYS[3]  subscription hash              (HASH; see set_subscription.lua)
-- KEYS[4]  trial hash                     (HASH until, limit, plan, major, started, ended,
--                                          granted:<trial plan>:<major>)
-- KEYS[5]  flags hash of the period       (HASH t<pct>:<limit>, lr:<limit>, c:<key><key>
--                                          (the two identity keys in byte order) -> unix ms:
--                                          the events already recorded)
-- KEYS[6]  events stream                  (STREAM)
-- KEYS[7]  links hash                     (HASH identifier key -> identity key; an identity
--                                          that has links maps to itself)
-- KEYS[8]  exempt set                     (SET of identity and identifier keys)
-- KEYS[9]  usage hash of the period       (HASH ch:<channel> -> contacts first counted on it,
--                                          d:<YYYY-MM-DD> -> new contacts counted that day)
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
-- ARGV[11] thresholds, percent, comma separated (80,100), unless the subscription has its own
-- ARGV[12] events stream max length (approximate)
-- ARGV[13] workspace id, for events
-- ARGV[14] subscription version the period was computed with ('' = no subscription)
-- ARGV[15] today in the workspace's time zone, YYYY-MM-DD (the day admissions count under)
-- ARGV[16..] contacts, each as: n, then n primary identifier keys in precedence order
--           (id, email, phone), then the visitor key or '', then the channel or ''
--
-- Returns { active, limit, trial_until_ms, plan, events_written, channels_changed,
-- identity_version (merges and exemptions so far: the links hash's IDENTITY_VERSION), then per
-- contact: code, identity key, flags, then per channel changed: name, its new count } (a dry
-- run answers the usage as it stands). CODE and FLAG below say what the numbers mean;
-- storage/codec.py reads them by the same names.
-- When the subscription's version is not ARGV[14], nothing is decided and the reply is
-- { -1, timezone, starts_at_ms, version, default_region }: the caller computes the period (and
-- the keys of national phone numbers) again and retries.
--
-- Uses lib/fields.lua (read_fields) and lib/identity.lua (root_of, resolve_identity,
-- read_contacts).
--
-- Why one script: "which identity is this, is it counted, is the count below the limit, may
-- a trial start, count it, record what it crosses" must be one step. Split over round trips,
-- two replicas could both admit the last free place, both grant the trial, or link one
-- identifier to two identities; MULTI/EXEC cannot branch on what it reads.
local CODE = {
  ALREADY_ACTIVE = 0,
  ADMITTED = 1,
  LIMIT_REACHED = 2,   -- denied
  WITHIN_LIMIT = 3,    -- dry run: Activate would admit it
  TRIAL_STARTED = 4,   -- admitted by starting the fair-usage trial
  SHADOW_ALLOWED = 5,  -- over the limit, allowed by shadow mode, not counted
  EXEMPT = 6,
}
local FLAG = {
  CONFLICT = 1,        -- the identifiers belonged to two identities
  VISITOR_MERGED = 2,  -- a counted visitor was this contact: the count dropped by one
}
local STALE = -1

local members, counts, sub_key, trial_key, flags, events, links, exempt, usage_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local period_key, period_name, today = ARGV[1], ARGV[2], ARGV[15]
local now, expire_at = tonumber(ARGV[3]), ARGV[4]
local dry = ARGV[5] == '1'
local maxlen, workspace = ARGV[12], ARGV[13]

local sub = read_fields(sub_key, 'limit', 'plan', 'trial_plan', 'trial_limit', 'trial_days',
  'major', 'shadow', 'version', 'timezone', 'starts_at', 'default_region', 'thresholds')
if (sub.version or '') ~= ARGV[14] then
  return { STALE, sub.timezone or 'UTC', sub.starts_at or '0', sub.version or '',
    sub.default_region or '' }
end

-- What applies: the subscription's numbers, else those of the default plan.
local terms
if sub.limit then
  terms = { limit = tonumber(sub.limit), plan = sub.plan, trial_plan = sub.trial_plan or '',
    trial_limit = tonumber(sub.trial_limit or '0'), trial_days = tonumber(sub.trial_days or '30'),
    major = sub.major or '0', shadow = sub.shadow == '1' }
else
  terms = { limit = tonumber(ARGV[6]), plan = ARGV[7], trial_plan = ARGV[8],
    trial_limit = tonumber(ARGV[9]), trial_days = tonumber(ARGV[10]), major = '0',
    shadow = false }
end
local thresholds = {}
-- the workspace's own thresholds, else the service's
local own = sub.limit and sub.thresholds or ''
for pct in string.gmatch(own ~= '' and own or ARGV[11], '%d+') do
  thresholds[#thresholds + 1] = tonumber(pct)
end

local trial = read_fields(trial_key, 'until', 'limit', 'ended')
local trial_until = tonumber(trial['until'] or '0')

-- The state of this run, changed only through the functions that take it.
local run = {
  active = redis.call('SCARD', members),
  limit = terms.limit,
  trial_on = trial_until > now,
  trial_until = trial_until,
  written = 0,           -- events recorded
  flags_touched = false, -- a flag was raised: the flags hash needs its expiry
  removed = false,       -- a member was removed: the set may need its expiry again
}
if run.trial_on then
  run.limit = math.max(terms.limit, tonumber(trial.limit))
end
local before = { active = run.active, limit = run.limit,
  trial_until = run.trial_on and trial_until or 0 }

-- Record an event with the count and the limit it reports.
local function emit(state, kind, count, limit, at, threshold)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
    'type', kind, 'workspace', workspace, 'period', period_name, 'threshold', threshold,
    'active', count, 'limit', limit, 'at', at)
  state.written = state.written + 1
end

-- True the first time `flag` is raised in this period.
local function once(state, flag)
  if redis.call('HSETNX', flags, flag, now) == 1 then
    state.flags_touched = true
    return true
  end
  return false
end

-- A dry run counts nobody, so it remembers whom it would have counted: a contact twice in
-- one batch would be counted once.
local seen = {}
local function is_member(key)
  return seen[key] or redis.call('SISMEMBER', members, key) == 1
end

-- The usage breakdown: contacts by the channel they were first counted on, admissions by
-- day. The changes are added up here and written once per channel at the end (a batch of a
-- thousand contacts on one channel costs one HINCRBY); `changed` keeps the channels in the
-- order first changed.
local deltas, changed, admitted_today = {}, {}, 0
local function count_channel(channel, by)
  local name = channel ~= '' and channel or 'unspecified'
  if deltas[name] == nil then
    changed[#changed + 1] = name
    deltas[name] = 0
  end
  deltas[name] = deltas[name] + by
end

local function count_admission(channel)
  count_channel(channel, 1)
  admitted_today = admitted_today + 1
end

-- Write the breakdown's changes; returns each changed channel's new count.
local function write_breakdown()
  local counts_now = {}
  for _, name in ipairs(changed) do
    counts_now[name] = redis.call('HINCRBY', usage_key, 'ch:' .. name, deltas[name])
  end
  if admitted_today > 0 then
    local day = redis.call('HINCRBY', usage_key, 'd:' .. today, admitted_today)
    if day == admitted_today then
      redis.call('PEXPIREAT', usage_key, expire_at) -- at least once a day: it always has one
    end
  end
  return counts_now
end

if not run.trial_on and trial_until > 0 and trial.ended ~= '1' and not dry then
  redis.call('HSET', trial_key, 'ended', '1')
  emit(run, 'TRIAL_ENDED', run.active, run.limit, trial_until, 0)
end

-- Resolve one contact (lib/identity.lua), then link what is new to its identity and fold in
-- a visitor seen before it was identified. Returns identity, conflict, visitor merged.
local function resolve(state, prim, visitor, channel)
  if #prim == 1 and not visitor then
    -- what resolve_identity answers for one identifier, without its tables: the common case
    return (root_of(links, prim[1], not dry)), false, false
  end
  local r = resolve_identity(links, members, prim, visitor, not dry)
  local identity = r.identity
  if #prim == 0 then
    return identity, false, false
  end
  local absorb = visitor and not r.vlinked and r.vroot ~= identity
  if not dry then
    local wrote = false
    for i = 1, #prim do
      if not r.known[i] and r.roots[i] ~= identity then
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
  if absorb and is_member(r.vroot) then
    visitor_merged = true
    if not dry then
      redis.call('SREM', members, r.vroot)
      state.removed = true
      count_channel(channel, -1) -- a visitor is first counted on its own channel
    end
    state.active = state.active - 1
  end
  if r.conflict and not dry then
    -- one event per pair of identities and period
    local other = r.known_order[2]
    local pair = identity < other and (identity .. other) or (other .. identity)
    if once(state, 'c:' .. pair) then
      emit(state, 'IDENTITY_CONFLICT', state.active, state.limit, now, 0)
    end
  end
  return identity, r.conflict, visitor_merged
end

-- Exempt: the identity, or any identifier of the request, was marked exempt. An exemption
-- found through an identifier is carried to the identity it now belongs to.
local function is_exempt(identity, prim, visitor)
  if redis.call('SISMEMBER', exempt, identity) == 1 then
    return true
  end
  for _, key in ipairs(identifiers_of({ prim, visitor })) do
    if key ~= identity and redis.call('SISMEMBER', exempt, key) == 1 then
      if not dry then
        redis.call('SADD', exempt, identity)
      end
      return true
    end
  end
  return false
end

-- Record the thresholds that the last admission crossed.
local function record_crossed(state)
  for _, pct in ipairs(thresholds) do
    local limit = state.limit
    if state.active * 100 >= pct * limit and (state.active - 1) * 100 < pct * limit then
      if once(state, 't' .. pct .. ':' .. limit) then
        emit(state, 'THRESHOLD_CROSSED', state.active, limit, now, pct)
      end
    end
  end
end

-- Start the fair-usage trial of the next plan for the first new contact over the limit, once
-- per platform major release. Returns whether it started.
local function start_trial(state, identity, channel)
  local granted = 'granted:' .. terms.trial_plan .. ':' .. terms.major
  if state.trial_on or terms.trial_plan == '' or terms.trial_limit <= state.active
      or redis.call('HEXISTS', trial_key, granted) == 1 then
    return false
  end
  state.trial_on = true
  state.trial_until = now + terms.trial_days * 86400000
  state.limit = math.max(terms.limit, terms.trial_limit)
  state.active = state.active + 1
  if dry then
    seen[identity] = true
  else
    redis.call('HSET', trial_key, 'until', state.trial_until, 'limit', terms.trial_limit,
      'plan', terms.trial_plan, 'major', terms.major, 'started', now, 'ended', '0',
      granted, now)
    emit(state, 'TRIAL_STARTED', state.active - 1, state.limit, now, 0)
    redis.call('SADD', members, identity)
    count_admission(channel)
    record_crossed(state)
  end
  return true
end

-- The code of one resolved contact.
local function decide(state, identity, merged, prim, visitor, channel)
  if is_exempt(identity, prim, visitor) then
    return CODE.EXEMPT -- never counted: a visitor it turns out to be is not counted either
  end
  if merged then
    -- the person was counted as a visitor: counted once now, under the identity
    if not is_member(identity) then
      state.active = state.active + 1
      if dry then
        seen[identity] = true
      else
        redis.call('SADD', members, identity)
        count_channel(channel, 1) -- counted again under the identity: the visitor's channel
      end
    end
    return CODE.ALREADY_ACTIVE
  end
  if state.active < state.limit and not dry then
    -- below the limit SADD alone tells new from already counted
    if redis.call('SADD', members, identity) == 1 then
      state.active = state.active + 1
      count_admission(channel)
      record_crossed(state)
      return CODE.ADMITTED
    end
    return CODE.ALREADY_ACTIVE
  end
  if is_member(identity) then
    return CODE.ALREADY_ACTIVE
  end
  if state.active < state.limit then
    state.active = state.active + 1
    seen[identity] = true
    return CODE.WITHIN_LIMIT
  end
  if start_trial(state, identity, channel) then
    return CODE.TRIAL_STARTED
  end
  if not dry and once(state, 'lr:' .. state.limit) then
    emit(state, 'LIMIT_REACHED', state.active, state.limit, now, 0)
  end
  return terms.shadow and CODE.SHADOW_ALLOWED or CODE.LIMIT_REACHED
end

local out = { 0, 0, 0, terms.plan, 0, 0, redis.call('HGET', links, IDENTITY_VERSION) or '0' }
for _, contact in ipairs(read_contacts(16)) do
  local identity, conflict, merged = resolve(run, contact[1], contact[2], contact[3])
  out[#out + 1] = decide(run, identity, merged, contact[1], contact[2], contact[3])
  out[#out + 1] = identity
  out[#out + 1] = (conflict and FLAG.CONFLICT or 0) + (merged and FLAG.VISITOR_MERGED or 0)
end

if dry then
  out[1], out[2], out[3] = before.active, before.limit, before.trial_until
else
  local size = redis.call('SCARD', members)
  if size ~= before.active then
    redis.call('HSET', counts, period_key, size, period_key .. ':limit', run.limit)
  end
  if (before.active == 0 or run.removed) and size > 0 then
    -- a set created (or emptied and created again) here gets its expiry here
    redis.call('PEXPIREAT', members, expire_at)
  end
  if run.flags_touched then
    redis.call('PEXPIREAT', flags, expire_at)
  end
  out[1], out[2] = size, run.limit
  out[3] = run.trial_on and run.trial_until or 0
end
out[5] = run.written
if not dry and #changed > 0 then
  local counts_now = write_breakdown()
  out[6] = #changed
  for _, name in ipairs(changed) do
    out[#out + 1] = name
    out[#out + 1] = counts_now[name]
  end
end
return out
