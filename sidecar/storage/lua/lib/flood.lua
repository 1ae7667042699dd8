-- lib/flood.lua: the flood guard: the new contacts a workspace admitted in a sliding minute
-- (60 one-second buckets and their running sum), the check before a new contact is admitted
-- past the subscription's new_per_minute, and FLOOD_DETECTED recorded once per minute of flood.
--
-- KEYS: none of its own; decide.lua's input.key.flood (the workspace's flood HASH: b:<second>
-- -> new contacts admitted in that second (unix s), sum -> their total over the window,
-- head -> the window's newest second, tail -> its oldest second whose bucket may still be
-- kept, ev -> the minute (unix s / 60) of the last FLOOD_DETECTED, at -> its time, unix ms).
-- ARGV: none of its own; input.now and input.dry of decide.lua, and input.terms.flood_rate
-- (0 = no guard) and flood_hold (lib/terms.lua).
-- Reply: none: a library of functions (flood_full, flood_detected, flood_count, write_flood).
-- The window is read once per call, at its first new contact (state.flood), moved on in the
-- script and written once at the end: a batch costs one read and one write of the hash.
-- The window's time is the latest second it has seen: a decision whose time is earlier (an
-- occurred_at in the past) is counted in the newest second and never moves the window back.
-- Why in a script: the rate is read in the same step that admits the next contact, so calls
-- on every replica at once admit exactly new_per_minute in a minute, and one of them only
-- records the minute's event.
-- Uses: lib/events.lua (emit).

local FLOOD_WINDOW = 60 -- seconds

-- The window as this call sees it (read on first use): its sum with the buckets older than
-- the minute subtracted, the second this call counts in, and what the end writes back.
local function flood_window(input, state)
  local f = state.flood
  if f then
    return f
  end
  local key = input.key.flood
  local got = redis.call('HMGET', key, 'sum', 'head', 'tail', 'ev')
  local now_s = math.floor(input.now / 1000)
  local head = tonumber(got[2] or now_s)
  local tail = tonumber(got[3] or (now_s - FLOOD_WINDOW + 1))
  local second = math.max(now_s, head)
  f = { sum = tonumber(got[1] or '0'), second = second, added = 0, stale = {},
    event_minute = tonumber(got[4] or '-1'),
    at = second == now_s and input.now or second * 1000 }
  -- the buckets that fell out of the minute (at most 60: tail >= head - 59 always)
  local last = math.min(second - FLOOD_WINDOW, head)
  if last >= tail then
    for s = tail, last do
      f.stale[#f.stale + 1] = 'b:' .. s
    end
    for _, n in ipairs(redis.call('HMGET', key, unpack(f.stale))) do
      if n then
        f.sum = f.sum - tonumber(n)
      end
    end
  end
  f.tail = math.max(tail, second - FLOOD_WINDOW + 1)
  state.flood = f
  return f
end

-- Whether the minute already holds the guard's new_per_minute new contacts.
local function flood_full(input, state)
  local f = flood_window(input, state)
  return f.sum + f.added >= input.terms.flood_rate
end

-- A new contact arrived past the rate: record FLOOD_DETECTED unless this minute of flood has
-- it already (active: the count then; limit: the guard's rate), and keep its time.
local function flood_detected(input, state)
  local f = state.flood
  local minute = math.floor(f.second / 60)
  if f.event_minute ~= minute then
    f.event_minute = minute
    redis.call('HSET', input.key.flood, 'ev', minute, 'at', f.at)
    emit(input, state, 'FLOOD_DETECTED', state.active, input.terms.flood_rate, f.at, 0)
  end
end

-- A new contact was admitted (or, in a dry run, would be): it takes its place in the minute.
local function flood_count(state)
  state.flood.added = state.flood.added + 1
end

-- Write the window back: drop the buckets that fell out, add this call's admissions to the
-- current second's. Nothing for a dry run or a call that never read it.
local function write_flood(input, state)
  local f = state.flood
  if not f or input.dry or (f.added == 0 and #f.stale == 0) then
    return
  end
  local key = input.key.flood
  if #f.stale > 0 then
    redis.call('HDEL', key, unpack(f.stale))
  end
  if f.added > 0 then
    redis.call('HINCRBY', key, 'b:' .. f.second, f.added)
  end
  redis.call('HSET', key, 'sum', f.sum + f.added, 'head', f.second, 'tail', f.tail)
end
