-- lib/overage.lua: the overage allowance: new contacts beyond the limit admitted up to
-- limit + floor(limit x overage_percent / 100) when no trial applies, each counted apart in
-- the period's overage, and OVERAGE_STARTED recorded at the first one.
--
-- KEYS: none of its own; decide.lua's input.key.members and input.key.counts (the counts
-- hash: period_key:overage -> contacts admitted in overage in the period).
-- ARGV: none of its own; input.arg.period_key, input.now, input.dry, input.overage (the stored
-- count) and input.terms.overage_percent of decide.lua.
-- Reply: none: a library of functions (overage_ceiling, admit_overage, read_overage,
-- write_overage). An admission moves decide.lua's state (active, and overage_added: the
-- admissions not yet written to the counts hash).
-- Why in a script: the allowance's last place is taken in the same step that counts the
-- contacts before it, so two calls cannot both take it; the overage count moves with the
-- count it is part of.
-- Uses: lib/events.lua (emit, once, record_crossed), lib/usage.lua (count_admission).

-- The most contacts the period may count under the limit that applies now (state.limit) and
-- the overage allowance: limit + floor(limit x overage_percent / 100).
local function overage_ceiling(input, state)
  return state.limit + math.floor(state.limit * input.terms.overage_percent / 100)
end

-- Admit `identity`, a new contact at or over the limit, under the overage allowance when one
-- applies and has room: never while a trial runs (its limit applies). A dry run counts it in
-- state only (state.seen). Returns whether it was admitted.
local function admit_overage(input, state, identity, channel)
  if state.trial_on or input.terms.overage_percent <= 0
      or state.active >= overage_ceiling(input, state) then
    return false
  end
  state.active = state.active + 1
  if input.dry then
    state.seen[identity] = true
    return true
  end
  redis.call('SADD', input.key.members, identity)
  count_admission(state, channel)
  state.overage_added = state.overage_added + 1
  record_crossed(input, state)
  if once(input, state, 'ov:' .. state.limit) then
    emit(input, state, 'OVERAGE_STARTED', state.active, state.limit, input.now, 0)
  end
  return true
end

-- The period's overage count as stored when the call started (decide.lua reads it with the
-- closed marker, into input.overage).
local function read_overage(input)
  return input.overage
end

-- Add this call's overage admissions to the period's overage count; returns the count.
local function write_overage(input, state)
  if state.overage_added == 0 then
    return read_overage(input)
  end
  return redis.call('HINCRBY', input.key.counts, input.arg.period_key .. ':overage',
    state.overage_added)
end
