-- decide.lua: decide contacts in one billing period; admit and count them unless dry_run.
-- Check (dry run), Activate and ActivateBatch all run this one script, so Check answers
-- exactly what Activate would.
--
-- KEYS[1]  members set of the period      (SET of 14-byte contact keys)
-- KEYS[2]  counts hash                    (HASH period_key -> active, period_key:limit -> limit)
-- KEYS[3]  subscription hash              (HASH; see set_subscription.lua)
-- KEYS[4]  trial hash                     (HASH until, limit, plan, major, ended,
--                                          granted:<trial plan>:<major>)
-- KEYS[5]  flags hash of the period       (HASH t<pct>:<limit>, lr:<limit>: events already sent)
-- KEYS[6]  events stream                  (STREAM)
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
-- ARGV[14..] contact keys, decided in this order
--
-- Returns { active, limit, trial_until_ms, plan, events_written, code_1, ..., code_n } (a dry
-- run answers the usage as it stands) with
-- code 0 already active, 1 admitted, 2 limit reached (denied), 3 within limit (dry run),
-- 4 trial started (admitted), 5 over the limit but allowed by shadow mode (not counted).
--
-- Why one script: "is the contact counted, is the count below the limit, may a trial start,
-- count it, record the threshold it crosses" must be one step. Split over round trips, two
-- replicas could both admit the last free place, or both grant the trial; MULTI/EXEC cannot
-- branch on what it reads. Redis runs a script without interleaving anything else.
local members, counts, sub, trial, flags, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local period_key, period_name = ARGV[1], ARGV[2]
local now, expire_at = tonumber(ARGV[3]), ARGV[4]
local dry = ARGV[5] == '1'
local workspace = ARGV[13]

local s = redis.call('HMGET', sub, 'limit', 'plan', 'trial_plan', 'trial_limit', 'trial_days', 'major', 'shadow')
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

local function emit(kind, active, at, threshold)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
    'type', kind, 'workspace', workspace, 'period', period_name, 'threshold', threshold,
    'active', active, 'limit', limit, 'at', at)
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
  emit('TRIAL_ENDED', redis.call('SCARD', members), trial_until, 0)
end

local before = redis.call('SCARD', members)
local limit_before = limit
local trial_until_before = trial_on and trial_until or 0
local active = before
local out = { 0, 0, 0, plan, 0 }

local function admitted(code)
  active = active + 1
  out[#out + 1] = code
  if dry then
    return
  end
  for _, pct in ipairs(thresholds) do
    if active * 100 >= pct * limit and (active - 1) * 100 < pct * limit then
      if once('t' .. pct .. ':' .. limit) then
        emit('THRESHOLD_CROSSED', active, now, pct)
      end
    end
  end
end

for i = 14, #ARGV do
  local key = ARGV[i]
  if active < limit and not dry then
    -- below the limit SADD alone tells new from already counted
    if redis.call('SADD', members, key) == 1 then
      admitted(1)
    else
      out[#out + 1] = 0
    end
  elseif redis.call('SISMEMBER', members, key) == 1 then
    out[#out + 1] = 0
  elseif active < limit then
    admitted(3)
  elseif not trial_on and trial_plan ~= '' and trial_limit > active
      and redis.call('HEXISTS', trial, 'granted:' .. trial_plan .. ':' .. major) == 0 then
    -- the first new contact over the limit starts the fair-usage trial of the next plan,
    -- once per platform major release
    trial_on = true
    trial_until = now + trial_days * 86400000
    limit = math.max(own_limit, trial_limit)
    if not dry then
      redis.call('HSET', trial, 'until', trial_until, 'limit', trial_limit, 'plan', trial_plan,
        'major', major, 'started', now, 'ended', '0', 'granted:' .. trial_plan .. ':' .. major, now)
      emit('TRIAL_STARTED', active, now, 0)
      redis.call('SADD', members, key)
    end
    admitted(4)
  else
    if not dry and once('lr:' .. limit) then
      emit('LIMIT_REACHED', active, now, 0)
    end
    out[#out + 1] = shadow and 5 or 2
  end
end

if not dry then
  if active ~= before then
    if before == 0 then
      redis.call('PEXPIREAT', members, expire_at)
    end
    redis.call('HSET', counts, period_key, active, period_key .. ':limit', limit)
  end
  if flags_touched then
    redis.call('PEXPIREAT', flags, expire_at)
  end
end

if dry then
  -- a dry run reports the usage as it stands, not as it would be
  out[1], out[2], out[3] = before, limit_before, trial_until_before
else
  out[1], out[2] = active, limit
  out[3] = trial_on and trial_until or 0
end
out[5] = written
return out
