-- lib/usage.lua: the period's usage breakdown: contacts by the channel they were first counted
-- on, admissions by day.
--
-- KEYS: none of its own; write_usage is given decide.lua's input.key.usage (the period's usage
-- hash: ch:<channel> -> contacts, d:<YYYY-MM-DD> -> admissions that day).
-- ARGV: none of its own; input.arg.day and input.arg.expire_at_ms of decide.lua.
-- Reply: none: a library of functions (count_channel, count_admission, write_usage). The changes
-- are added up in decide.lua's state (deltas, changed in the order first changed,
-- admitted_today) and written once per channel at the end: a batch of a thousand contacts on
-- one channel costs one HINCRBY. write_usage returns each changed channel's new count.
-- Why in a script: the breakdown moves in the same step as the count it breaks down.
-- Uses: nothing.

local function count_channel(state, channel, by)
  local name = channel ~= '' and channel or 'unspecified'
  if state.deltas[name] == nil then
    state.changed[#state.changed + 1] = name
    state.deltas[name] = 0
  end
  state.deltas[name] = state.deltas[name] + by
end

local function count_admission(state, channel)
  count_channel(state, channel, 1)
  state.admitted_today = state.admitted_today + 1
end

-- Write the breakdown's changes; returns each changed channel's new count by name (nil when
-- none changed).
local function write_usage(input, state)
  if #state.changed == 0 then
    return nil
  end
  local counts_now = {}
  for _, name in ipairs(state.changed) do
    counts_now[name] = redis.call('HINCRBY', input.key.usage, 'ch:' .. name, state.deltas[name])
  end
  local admitted = state.admitted_today
  if admitted > 0 then
    local day = redis.call('HINCRBY', input.key.usage, 'd:' .. input.arg.day, admitted)
    if day == admitted then
      -- at least once a day: it always has one
      redis.call('PEXPIREAT', input.key.usage, input.arg.expire_at_ms)
    end
  end
  return counts_now
end
