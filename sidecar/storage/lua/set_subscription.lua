-- set_subscription.lua: replace a workspace's subscription, unless it changed since it was read,
-- and record the change in the audit trail.
--
-- KEYS[1]  subscription  HASH of codec.SUBSCRIPTION_FIELDS and version
-- KEYS[2]  audit         STREAM of the workspace's audit records (lib/audit.lua)
-- ARGV[1]  expected_version  the version the change was made from (0 = there was no
--                            subscription)
-- ARGV[2]  admin         the admin making the change
-- ARGV[3]  method        the Admin method (SetSubscription)
-- ARGV[4]  now_ms        the instant of the change (unix ms)
-- ARGV[5]  retention_ms  how long audit records are kept
-- ARGV[6]  audited       the fields whose change is recorded, comma separated
--                        (storage/audit.py's AUDITED_SUBSCRIPTION_FIELDS; the others
--                        follow from them)
-- ARGV[7..] fields       field, value, field, value, ... (codec.subscription_args)
--
-- Reply: version  the subscription's new version, or -1 when its version is no longer
-- expected_version: the caller reads it again and re-applies its change (nothing is
-- recorded).
--
-- The audit record holds each audited field whose stored value differs from the new one,
-- with both values as stored ('' before for a field the hash did not have); setting the same
-- values again records a change of nothing.
--
-- Why a script: the old fields go and the new ones arrive together with a new version, so
-- no decision ever reads half of one subscription and half of another; and a change of one
-- field made from a stale read never undoes a concurrent change of another. Counted contacts
-- are not touched: a smaller limit never un-counts anyone. The audit record is written in
-- the same step, against the values it replaces.
--
-- Uses: lib/audit.lua (read_audit, append_audit).
local subscription, audit_key = KEYS[1], KEYS[2]
local current = tonumber(redis.call('HGET', subscription, 'version') or '0')
if current ~= tonumber(ARGV[1]) then
  return -1
end
local audit = read_audit(2)
local audited = {}
for name in string.gmatch(ARGV[6], '[^,]+') do
  audited[name] = true
end
local before = {}
local stored = redis.call('HGETALL', subscription)
for i = 1, #stored, 2 do
  before[stored[i]] = stored[i + 1]
end
local changes = {}
for i = 7, #ARGV, 2 do
  local name, value = ARGV[i], ARGV[i + 1]
  if audited[name] and before[name] ~= value then
    changes[#changes + 1] = { name, before[name] or '', value }
  end
end
redis.call('DEL', subscription)
redis.call('HSET', subscription, 'version', current + 1, unpack(ARGV, 7))
append_audit(audit_key, audit, #changes > 0, changes)
return current + 1
