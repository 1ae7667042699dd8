-- decide.lua: resolve contacts to identities and decide them in one billing period; admit and
-- count them unless dry_run. Check (dry run), Activate and ActivateBatch all run this one
-- script, so Check answers exactly what Activate would.
--
-- KEYS[1]  members       the period's members (SET of 14-byte identity keys)
-- KEYS[2]  counts        HASH period_key -> active, and period_key:<field>: limit, plan and
--                        packs (at the last count written), overage (contacts admitted in
--                        overage), closed (unix ms, close.lua's)
-- KEYS[3]  subscription  HASH, set_subscription.lua's
-- KEYS[4]  trial         HASH until, limit, plan, major, started, ended, granted:<plan>:<major>
-- KEYS[5]  flags         the period's HASH t<pct>:<limit>, lr:<limit>, ov:<limit>,
--                        c:<key><key> (the two identity keys in byte order) -> unix ms: the
--                        events already recorded
-- KEYS[6]  events        STREAM
-- KEYS[7]  links         HASH identifier key -> identity key (an identity that has links maps
--                        to itself), and IDENTITY_VERSION
-- KEYS[8]  exempt        SET of identity and identifier keys
-- KEYS[9]  usage         the period's HASH ch:<channel> -> contacts first counted on it,
--                        d:<YYYY-MM-DD> -> new contacts counted that day
-- KEYS[10] flood         HASH: the new contacts of the last minute, by second (lib/flood.lua)
-- KEYS[11] index         HASH identity key -> its entry (lib/index.lua): the last period it
--                        was counted in and its identifiers' keys
-- ARGV[1]  period_key            the period's field in the counts hash
-- ARGV[2]  period_name           for events (2026-11)
-- ARGV[3]  now_ms                now, unix ms
-- ARGV[4]  expire_at_ms          unix ms at which the period's members, flags and usage expire
-- ARGV[5]  dry_run               1 = decide only, write nothing
-- ARGV[6]  limit                 limit without a subscription
-- ARGV[7]  plan                  plan without a subscription
-- ARGV[8]  trial_plan            trial plan without a subscription ('' = none)
-- ARGV[9]  trial_limit           trial limit without a subscription
-- ARGV[10] trial_days            trial days without a subscription
-- ARGV[11] thresholds            percents (80,100), unless the subscription has its own
-- ARGV[12] events_max            events stream max length (approximate)
-- ARGV[13] workspace_id          for events
-- ARGV[14] subscription_version  the version the period was computed with ('' = none)
-- ARGV[15] day                   today in the workspace's time zone, YYYY-MM-DD
-- ARGV[16] late                  1 = the period is not the current one (an occurred_at in the
--                                period before, within the lateness): its recorded limit and
--                                plan apply, not the subscription's as it is now
-- ARGV[17..] contacts            each as in lib/contacts.lua
--
-- Reply:
--   [1] active            the period's count (a dry run: as it was before the call)
--   [2] limit             the limit that applies (the trial's while one runs)
--   [3] trial_until_ms    when the running trial ends, 0 for none
--   [4] plan              the plan that applies (terms_of)
--   [5] events_written    events recorded by this call
--   [6] channels_changed  how many channels end the reply (0 in a dry run)
--   [7] identity_version  the links hash's IDENTITY_VERSION ('0' before any): raised by each
--                         merge that folds and each set_exempt that changes a mark
--   [8] overage           the period's contacts admitted in overage (a dry run: as before)
--   then per contact: code, identity, flags
--   then per channel changed: channel, count
-- code and flags are CODE and FLAG below; count is the channel's new count.
-- When the subscription's version is not subscription_version nothing is decided, and the
-- caller computes the period (and the keys of national phone numbers) again and retries:
-- Reply when stale:
--   [1] stale           STALE
--   [2] timezone        the subscription's time zone ('UTC' when none)
--   [3] starts_at_ms    its start, unix ms (0 when none)
--   [4] version         its version ('' when none)
--   [5] default_region  its default phone region ('' when none)
-- When the period is closed (close.lua) nothing is decided:
-- Reply when closed:
--   [1] closed          CLOSED
--   [2] closed_at_ms    when it closed, unix ms
--
-- Why one script: "which identity is this, is it counted, is the count below the limit, may
-- a trial start, count it, record what it crosses" must be one step. Split over round trips,
-- two replicas could both admit the last free place, both grant the trial, or link one
-- identifier to two identities; MULTI/EXEC cannot branch on what it reads.
--
-- Uses: lib/fields.lua, lib/identity.lua, lib/contacts.lua, lib/terms.lua, lib/events.lua,
-- lib/usage.lua, lib/members.lua, lib/exempt.lua, lib/index.lua, lib/links.lua,
-- lib/trial.lua, lib/overage.lua, lib/flood.lua.
local CODE = {
  ALREADY_ACTIVE = 0,
  ADMITTED = 1,
  LIMIT_REACHED = 2,   -- denied
  WITHIN_LIMIT = 3,    -- dry run: Activate would admit it
  TRIAL_STARTED = 4,   -- admitted by starting the fair-usage trial
  SHADOW_ALLOWED = 5,  -- over the limit, allowed by shadow mode, not counted
  EXEMPT = 6,
  RATE_LIMITED = 7,    -- a new contact past the flood guard's rate (HOLD): denied
  SHADOW_RATE_LIMITED = 8, -- the same, allowed by shadow mode, not counted
}
local FLAG = {
  CONFLICT = 1,        -- the identifiers belonged to two identities
  VISITOR_MERGED = 2,  -- a counted visitor was this contact: the count dropped by one
  OVERAGE = 4,         -- ADMITTED (WITHIN_LIMIT) beyond the limit, under the overage allowance
}
-- the codes of a new contact admitted (or, in a dry run, that would be)
local ADMITS = { [CODE.ADMITTED] = true, [CODE.WITHIN_LIMIT] = true, [CODE.TRIAL_STARTED] = true }
local STALE = -1
local CLOSED = -2
local ARG_CONTACTS = 17 -- the contacts' first position in ARGV

local key = { members = KEYS[1], counts = KEYS[2], subscription = KEYS[3], trial = KEYS[4],
  flags = KEYS[5], events = KEYS[6], links = KEYS[7], exempt = KEYS[8], usage = KEYS[9],
  flood = KEYS[10], index = KEYS[11] }
local arg = { period_key = ARGV[1], period_name = ARGV[2], now_ms = ARGV[3],
  expire_at_ms = ARGV[4], dry_run = ARGV[5], limit = ARGV[6], plan = ARGV[7],
  trial_plan = ARGV[8], trial_limit = ARGV[9], trial_days = ARGV[10], thresholds = ARGV[11],
  events_max = ARGV[12], workspace_id = ARGV[13], subscription_version = ARGV[14],
  day = ARGV[15], late = ARGV[16] }

local sub = read_subscription(key.subscription)
if (sub.version or '') ~= arg.subscription_version then
  return { STALE, sub.timezone or 'UTC', sub.starts_at or '0', sub.version or '',
    sub.default_region or '' }
end
-- the period's closed marker and overage count, in one read
local period = redis.call('HMGET', key.counts, arg.period_key .. ':closed',
  arg.period_key .. ':overage')
if period[1] then
  return { CLOSED, period[1] }
end

-- What the call reads and never changes.
local input = { key = key, arg = arg, now = tonumber(arg.now_ms), dry = arg.dry_run == '1',
  terms = terms_of(sub, arg, arg.late == '1' and recorded_terms(key.counts, arg.period_key)),
  identity_version = redis.call('HGET', key.links, IDENTITY_VERSION) or '0',
  overage = tonumber(period[2] or '0'), ordinal = period_ordinal(arg.period_key) }
local trial = read_trial(input)
local trial_on = trial.until_ms > input.now
local active = redis.call('SCARD', key.members)
local limit = trial_on and math.max(input.terms.limit, tonumber(trial.limit)) or input.terms.limit

-- What the call changes, all of it: the lib functions are passed it, decide and reply see it.
local state = {
  active = active,
  limit = limit,
  trial_on = trial_on,
  trial_until = trial.until_ms,
  -- as it was: what a dry run reports, and what write_count compares with
  start = { active = active, limit = limit, trial_until = trial_on and trial.until_ms or 0 },
  written = 0,           -- events recorded
  flags_touched = false, -- a flag was raised: the flags hash needs its expiry
  removed = false,       -- a member was removed: the set may need its expiry again
  seen = {},             -- a dry run's members (lib/members.lua)
  deltas = {}, changed = {}, admitted_today = 0, -- the usage breakdown (lib/usage.lua)
  overage_added = 0,     -- admissions in overage (lib/overage.lua)
  -- the reply: eight places that reply() fills, then each contact's code, identity, flags
  out = { false, false, false, false, false, false, false, false },
}
end_trial(input, state, trial)

-- The code of one resolved contact, and FLAG.OVERAGE when it was admitted in overage.
local function decide(identity, merged, contact)
  if is_exempt(input, identity, contact) then
    return CODE.EXEMPT -- never counted: a visitor it turns out to be is not counted either
  end
  local dry, members = input.dry, input.key.members
  if merged then
    -- the person was counted as a visitor: counted once now, under the identity
    if not is_member(input, state, identity) then
      state.active = state.active + 1
      if dry then
        state.seen[identity] = true
      else
        redis.call('SADD', members, identity)
        -- counted again under the identity: on the visitor's channel
        count_channel(state, contact[3], 1)
      end
    end
    return CODE.ALREADY_ACTIVE
  end
  -- a new contact past the flood guard's rate: FLAG admits it, HOLD does not (lib/flood.lua)
  if input.terms.flood_rate > 0 and flood_full(input, state)
      and not is_member(input, state, identity) then
    if not dry then
      flood_detected(input, state)
    end
    if input.terms.flood_hold then
      return input.terms.shadow and CODE.SHADOW_RATE_LIMITED or CODE.RATE_LIMITED
    end
  end
  if state.active < state.limit and not dry then
    -- below the limit SADD alone tells new from already counted
    if redis.call('SADD', members, identity) == 1 then
      state.active = state.active + 1
      count_admission(state, contact[3])
      record_crossed(input, state)
      return CODE.ADMITTED
    end
    return CODE.ALREADY_ACTIVE
  end
  if is_member(input, state, identity) then
    return CODE.ALREADY_ACTIVE
  end
  if state.active < state.limit then
    state.active = state.active + 1
    state.seen[identity] = true
    return CODE.WITHIN_LIMIT
  end
  if start_trial(input, state, identity, contact[3]) then
    return CODE.TRIAL_STARTED
  end
  if admit_overage(input, state, identity, contact[3]) then
    return dry and CODE.WITHIN_LIMIT or CODE.ADMITTED, FLAG.OVERAGE
  end
  if not dry and once(input, state, 'lr:' .. state.limit) then
    emit(input, state, 'LIMIT_REACHED', state.active, state.limit, input.now, 0)
  end
  return input.terms.shadow and CODE.SHADOW_ALLOWED or CODE.LIMIT_REACHED
end

-- The reply (see Reply above), given the usage it reports and each changed channel's new
-- count; the outcomes are already in state.out, after its head.
local function reply(active_now, limit_now, trial_until_ms, overage_now, channels)
  local out = state.out
  out[1], out[2], out[3], out[4] = active_now, limit_now, trial_until_ms, input.terms.plan
  out[5], out[6], out[7] = state.written, #state.changed, input.identity_version
  out[8] = overage_now
  for _, name in ipairs(state.changed) do
    out[#out + 1] = name
    out[#out + 1] = channels[name]
  end
  return out
end

local out = state.out
for _, contact in ipairs(read_contacts(ARG_CONTACTS)) do
  local identity, conflict, merged = resolve(input, state, contact)
  local n = #out
  local code, overage = decide(identity, merged, contact)
  if input.terms.flood_rate > 0 and ADMITS[code] then
    flood_count(state)
  end
  if not input.dry and (code == CODE.ADMITTED or code == CODE.TRIAL_STARTED or merged) then
    -- first counted in the period (or again, under the identity): its links are kept
    index_seen(key.index, identity, input.ordinal)
  end
  out[n + 1] = code
  out[n + 2] = identity
  out[n + 3] = (conflict and FLAG.CONFLICT or 0) + (merged and FLAG.VISITOR_MERGED or 0)
    + (overage or 0)
end

if input.dry then
  return reply(state.start.active, state.start.limit, state.start.trial_until,
    read_overage(input))
end
local active_now = write_count(input, state)
expire_flags(input, state)
write_flood(input, state)
local channels = write_usage(input, state)
return reply(active_now, state.limit, state.trial_on and state.trial_until or 0,
  write_overage(input, state), channels)
