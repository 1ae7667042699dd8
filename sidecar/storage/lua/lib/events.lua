-- lib/events.lua: the events a decision records, each once per period: emit one, raise the
-- flag that says it was recorded (once), record the thresholds an admission crossed.
--
-- KEYS: none of its own; its functions are given decide.lua's input: input.key.events (the
-- events stream) and input.key.flags (the period's flags hash: flag -> unix ms raised).
-- ARGV: none of its own; input.arg.events_max, workspace_id, period_name and expire_at_ms,
-- and input.now, of decide.lua.
-- Reply: none: a library of functions (emit, once, record_crossed, expire_flags); they count
-- what they record in decide.lua's state (written, flags_touched).
-- Why in a script: an event is recorded in the same step as the decision it reports, and a
-- flag is raised by one call only, however many decide at once.
-- Uses: nothing.

-- Record an event with the count and the limit it reports.
local function emit(input, state, kind, count, limit, at, threshold)
  redis.call('XADD', input.key.events, 'MAXLEN', '~', input.arg.events_max, '*',
    'type', kind, 'workspace', input.arg.workspace_id, 'period', input.arg.period_name,
    'threshold', threshold, 'active', count, 'limit', limit, 'at', at)
  state.written = state.written + 1
end

-- True the first time `flag` is raised in this period.
local function once(input, state, flag)
  if redis.call('HSETNX', input.key.flags, flag, input.now) == 1 then
    state.flags_touched = true
    return true
  end
  return false
end

-- Record the thresholds that the last admission crossed.
local function record_crossed(input, state)
  for _, pct in ipairs(input.terms.thresholds) do
    local limit = state.limit
    if state.active * 100 >= pct * limit and (state.active - 1) * 100 < pct * limit then
      if once(input, state, 't' .. pct .. ':' .. limit) then
        emit(input, state, 'THRESHOLD_CROSSED', state.active, limit, input.now, pct)
      end
    end
  end
end

-- A flags hash this call raised a flag in gets the period's expiry.
local function expire_flags(input, state)
  if state.flags_touched then
    redis.call('PEXPIREAT', input.key.flags, input.arg.expire_at_ms)
  end
end
