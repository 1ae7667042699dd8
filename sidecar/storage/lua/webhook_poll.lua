-- webhook_poll.lua: look at a workspace's events for the webhook deliverers, and take the
-- workspace's lease when something waits to be delivered and nobody holds it.
--
-- KEYS[1]  stream  the workspace's events STREAM
-- KEYS[2]  lease   STRING: the consumer delivering the workspace now
-- ARGV[1]  group     consumer group
-- ARGV[2]  consumer  this consumer's name
-- ARGV[3]  lease_ms  lease length (ms)
-- ARGV[4]  start     the id a new group starts after (just before webhooks were first turned on)
-- ARGV[5]  take      1 to take a free lease, 0 only to look
--
-- Reply:
--   [1] state   0 when nothing waits, else the lease's: 1 this consumer's (taken now, or held
--               already), 2 another consumer's, 3 free (and not taken: take is 0)
--   [2] oldest  the id of the oldest event not yet delivered (pending in the group, or not
--               read by it yet), '' for none
--
-- Why a script: the group is created only when it is seen to be missing (a second XGROUP
-- CREATE would fail), and the lease is taken only for a workspace seen to have work, with no
-- other deliverer acting in between; one round trip per workspace, pipelined across many.
--
-- Uses: nothing.
local stream, lease = KEYS[1], KEYS[2]
local group, consumer, lease_ms, start, take = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

if redis.call('EXISTS', stream) == 0 then
  return { 0, '' }
end
local pending, last
for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local fields = {}
  for i = 1, #info, 2 do
    fields[info[i]] = info[i + 1]
  end
  if fields['name'] == group then
    pending, last = fields['pending'], fields['last-delivered-id']
  end
end
if pending == nil then
  redis.call('XGROUP', 'CREATE', stream, group, start)
  pending, last = 0, start
end

local oldest = ''
if pending > 0 then
  oldest = redis.call('XPENDING', stream, group)[2]
else
  local after = redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT', 1)
  if #after > 0 then
    oldest = after[1][1]
  end
end
if oldest == '' then
  return { 0, '' }
end

local holder = redis.call('GET', lease)
if holder == consumer then
  return { 1, oldest }
end
if holder then
  return { 2, oldest }
end
if take == '1' then
  redis.call('SET', lease, consumer, 'PX', lease_ms)
  return { 1, oldest }
end
return { 3, oldest }
