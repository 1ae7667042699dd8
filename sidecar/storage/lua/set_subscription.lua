-- set_subscription.lua: replace a workspace's subscription, unless it changed since it was read.
--
-- KEYS[1]  subscription  HASH of codec.SUBSCRIPTION_FIELDS and version
-- ARGV[1]  expected_version  the version the change was made from (0 = there was no
--                            subscription)
-- ARGV[2..] fields           field, value, field, value, ... (codec.subscription_args)
--
-- Reply: version  the subscription's new version, or -1 when its version is no longer
-- expected_version: the caller reads it again and re-applies its change.
--
-- Why a script: the old fields go and the new ones arrive together with a new version, so
-- no decision ever reads half of one subscription and half of another; and a change of one
-- field made from a stale read never undoes a concurrent change of another. Counted contacts
-- are not touched: a smaller limit never un-counts anyone.
--
-- Uses: nothing.
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then
  return -1
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', current + 1, unpack(ARGV, 2))
return current + 1
