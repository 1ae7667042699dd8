-- set_subscription.lua: replace a workspace's subscription.
--
-- KEYS[1]  subscription hash
-- ARGV     field, value, field, value, ... (codec.SUBSCRIPTION_FIELDS, codec.subscription_args)
--
-- Returns the subscription's new version.
--
-- Why a script: the old fields go and the new ones arrive together with a new version, so
-- no decision ever reads half of one subscription and half of another. Counted contacts are
-- not touched: a smaller limit never un-counts anyone.
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0') + 1
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', version, unpack(ARGV))
return version
