-- webhook_release.lua: give up a workspace's webhook lease, if it is still this consumer's.
--
-- KEYS[1]  lease     STRING: the consumer delivering the workspace now
-- ARGV[1]  consumer  this consumer's name
--
-- Reply: released  1 when released, 0 when it was no longer this consumer's.
--
-- Why a script: compare and delete in one step, so a lease that expired and was taken by
-- another consumer meanwhile is not deleted from under it.
--
-- Uses: nothing.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
