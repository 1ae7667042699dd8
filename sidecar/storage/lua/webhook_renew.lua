-- webhook_renew.lua: extend a workspace's webhook lease, if it is still this consumer's.
--
-- KEYS[1]  lease     STRING: the consumer delivering the workspace now
-- ARGV[1]  consumer  this consumer's name
-- ARGV[2]  lease_ms  lease length (ms)
--
-- Reply: renewed  1 when renewed, 0 when the lease expired or another consumer holds it.
--
-- Why a script: checking the holder and extending must be one step, or a lease that expired
-- and was taken by another consumer in between would be extended for the wrong one.
--
-- Uses: nothing.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
