-- close.lua: close a workspace's period: from now on nothing changes its count. A period with
-- a count gets its statement (written once, never changed) and a PERIOD_CLOSED event.
--
-- KEYS[1]  counts      HASH period_key -> active, and period_key:<field>: limit, plan, packs,
--                      overage (at the last count written) and closed (unix ms, this script's)
-- KEYS[2]  trial       HASH until, plan, started, ... (lib/trial.lua's): the last trial
-- KEYS[3]  events      STREAM of events (lib/events.lua's entries)
-- KEYS[4]  statements  HASH period_key -> the statement, JSON
-- ARGV[1]  period_key    the period's field in the counts hash
-- ARGV[2]  period_name   YYYY-MM, for the statement and the event
-- ARGV[3]  start_ms      the period's first instant, unix ms
-- ARGV[4]  end_ms        the period's end (exclusive), unix ms
-- ARGV[5]  now_ms        the close instant, unix ms
-- ARGV[6]  limit         the limit when the count has none recorded (the service's default)
-- ARGV[7]  plan          the plan when the count has none recorded (the service's default)
-- ARGV[8]  events_max    approximate cap on the events stream's length
-- ARGV[9]  workspace_id  for the statement and the event
--
-- Reply:
--   [1] closed        1 when this call closed the period, 0 when it was closed before
--   [2] closed_at_ms  when it was closed, unix ms
--   [3] statement     its statement (JSON; '' when the period had no count)
--
-- The statement's fields: period, start_ms, end_ms, active, limit, plan, packs, overage,
-- trial_plan and trial_until_ms ('' and 0 when no trial ran in the period), closed_at_ms;
-- numbers as decimal strings. A trial ran in the period when it started before its end and
-- ended after its start.
--
-- Why a script: the closed mark, the statement and the event are one step, and decide.lua
-- reads the mark in the step that would count: a count is either in the statement or refused,
-- and however many processes close the period at once, one closes it and records its event.
--
-- Uses: nothing.
local counts, trial, events, statements = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local period_key, period_name, start_ms, end_ms, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4],
  ARGV[5]
local default_limit, default_plan, events_max, workspace_id = ARGV[6], ARGV[7], ARGV[8], ARGV[9]

local closed_at = redis.call('HGET', counts, period_key .. ':closed')
if closed_at then
  return { 0, closed_at, redis.call('HGET', statements, period_key) or '' }
end
redis.call('HSET', counts, period_key .. ':closed', now_ms)

local found = redis.call('HMGET', counts, period_key, period_key .. ':limit',
  period_key .. ':plan', period_key .. ':packs', period_key .. ':overage')
if not found[1] then
  return { 1, now_ms, '' }
end

local last = redis.call('HMGET', trial, 'until', 'plan', 'started')
local trial_plan, trial_until = '', '0'
if last[1] and last[3] and tonumber(last[3]) < tonumber(end_ms)
    and tonumber(last[1]) > tonumber(start_ms) then
  trial_plan, trial_until = last[2] or '', last[1]
end

local statement = { period = period_name, start_ms = start_ms, end_ms = end_ms,
  active = found[1], limit = found[2] or default_limit, plan = found[3] or default_plan,
  packs = found[4] or '0', overage = found[5] or '0', trial_plan = trial_plan,
  trial_until_ms = trial_until, closed_at_ms = now_ms }
local text = cjson.encode(statement)
redis.call('HSET', statements, period_key, text)
redis.call('XADD', events, 'MAXLEN', '~', events_max, '*',
  'type', 'PERIOD_CLOSED', 'workspace', workspace_id, 'period', period_name,
  'threshold', 0, 'active', statement.active, 'limit', statement.limit, 'at', now_ms,
  'plan', statement.plan, 'packs', statement.packs, 'overage', statement.overage,
  'trial_plan', trial_plan, 'trial_until', trial_until)
return { 1, now_ms, text }
