-- webhook_read_new.lua: read a workspace's next events for this consumer (XREADGROUP >), and
-- count the events that were trimmed from the stream before the group read them.
--
-- KEYS[1]  stream  the workspace's events STREAM
-- ARGV[1]  group     consumer group
-- ARGV[2]  consumer  this consumer's name
-- ARGV[3]  count     most entries to read
--
-- Reply:
--   [1] skipped  the events trimmed (MAXLEN ~ MAC_EVENTS_MAX) before they were read, counted
--                once
--   [2] entries  as XREADGROUP gives them: { id, { field, value, ... } } each, in id order
--
-- How: once the group has read up to the stream's last entry, its lag (Redis 7: entries added
-- minus entries read, a counter the trim does not move) is the number of entries it never
-- read; the counter is then set to the entries added, so they are counted once.
-- Why a script: that lag means "trimmed" only while nothing was added after the read; an
-- event recorded between the read and the look would otherwise be counted as lost.
--
-- Uses: nothing.
local stream = KEYS[1]
local group, consumer, count = ARGV[1], ARGV[2], tonumber(ARGV[3])

local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count,
  'STREAMS', stream, '>')
local entries = reply and reply[1][2] or {}
local skipped = 0
if #entries < count then
  local generated, added
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      generated = info[i + 1]
    elseif info[i] == 'entries-added' then
      added = info[i + 1]
    end
  end
  for _, found in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local fields = {}
    for i = 1, #found, 2 do
      fields[found[i]] = found[i + 1]
    end
    local lag, last = fields['lag'], fields['last-delivered-id']
    if fields['name'] == group and type(lag) == 'number' and lag > 0 and last == generated then
      skipped = lag
      redis.call('XGROUP', 'SETID', stream, group, last, 'ENTRIESREAD', added)
    end
  end
end
return { skipped, entries }
