-- lib/trial.lua: the fair-usage trial of the next plan: read, ended when it is over, started
-- for the first new contact over the limit once per platform major release.
--
-- KEYS: none of its own; decide.lua's input.key.trial (the trial hash: until, limit, plan,
-- major, started, ended, granted:<trial plan>:<major>) and input.key.members.
-- ARGV: none of its own; input.now and input.dry of decide.lua, and its terms (input.terms:
-- trial_plan, trial_limit, trial_days, major).
-- Reply: none: a library of functions (read_trial, end_trial, start_trial); a trial started
-- moves decide.lua's state (trial_on, trial_until, limit, and active: its contact is counted).
-- Why in a script: checking that the trial was never granted and granting it is one step, so
-- two calls cannot both start it.
-- Uses: lib/events.lua (emit, record_crossed), lib/usage.lua (count_admission).

-- The trial hash's until (until_ms, 0 for none), limit and ended (false where missing).
local function read_trial(input)
  local found = redis.call('HMGET', input.key.trial, 'until', 'limit', 'ended')
  return { until_ms = tonumber(found[1] or '0'), limit = found[2], ended = found[3] }
end

-- A trial that is over is marked ended and its end recorded, once.
local function end_trial(input, state, trial)
  if not state.trial_on and trial.until_ms > 0 and trial.ended ~= '1' and not input.dry then
    redis.call('HSET', input.key.trial, 'ended', '1')
    emit(input, state, 'TRIAL_ENDED', state.active, state.limit, trial.until_ms, 0)
  end
end

-- Start the trial for `identity`, the first new contact over the limit, and count it.
-- Returns whether it started.
local function start_trial(input, state, identity, channel)
  local terms, now = input.terms, input.now
  local granted = 'granted:' .. terms.trial_plan .. ':' .. terms.major
  if state.trial_on or terms.trial_plan == '' or terms.trial_limit <= state.active
      or redis.call('HEXISTS', input.key.trial, granted) == 1 then
    return false
  end
  state.trial_on = true
  state.trial_until = now + terms.trial_days * 86400000
  state.limit = math.max(terms.limit, terms.trial_limit)
  state.active = state.active + 1
  if input.dry then
    state.seen[identity] = true
  else
    redis.call('HSET', input.key.trial, 'until', state.trial_until, 'limit', terms.trial_limit,
      'plan', terms.trial_plan, 'major', terms.major, 'started', now, 'ended', '0',
      granted, now)
    emit(input, state, 'TRIAL_STARTED', state.active - 1, state.limit, now, 0)
    redis.call('SADD', input.key.members, identity)
    count_admission(state, channel)
    record_crossed(input, state)
  end
  return true
end
