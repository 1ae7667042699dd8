-- merge.lua: fold identities into one; the current period's count drops by the number of
-- folded identities that were counted alongside the survivor.
--
-- KEYS[1]  members  the current period's members (SET of identity keys)
-- KEYS[2]  counts   HASH period_key -> active (decide.lua's), period_key:closed (close.lua's)
-- KEYS[3]  links    HASH identifier key -> identity key, and IDENTITY_VERSION
-- KEYS[4]  index    HASH identity key -> its entry (lib/index.lua): a folded identity's
--                   entry, and itself, join the survivor's
-- KEYS[5]  audit    STREAM of the workspace's audit records (lib/audit.lua)
-- ARGV[1]  period_key    the period's field in the counts hash
-- ARGV[2]  expire_at_ms  unix ms at which the period's members expire
-- ARGV[3]  admin         the admin merging
-- ARGV[4]  method        the Admin method (Merge)
-- ARGV[5]  now_ms        the instant of the merge (unix ms)
-- ARGV[6]  retention_ms  how long audit records are kept
-- ARGV[7..] contacts     the target contact, then the source contacts, each as in decide.lua
--                        (lib/contacts.lua; the channel is not used here)
--
-- The survivor is the target's identity by the rule decide.lua follows (resolve_identity in
-- lib/identity.lua): its highest-precedence known identity (linked, or counted this period),
-- else its first identifier. The target's other identities, a visitor seen before it was
-- identified among them, are folded into it too. Folding raises the identity version (the
-- links hash's field IDENTITY_VERSION), which decide.lua reports. A closed period's members
-- and count stay as they are (its statement is final); the identities are folded all the same.
-- The audit record holds the counts alone (identities_folded, uncounted), never a key; a
-- merge that folded nothing records a change of nothing.
--
-- Reply:
--   [1] survivor   the surviving identity key
--   [2] folded     identities folded into it
--   [3] uncounted  folded identities no longer counted: the count dropped by as many
--   [4] active     the period's count after the merge
--
-- Why a script: resolving the identities, re-pointing them and moving their place in the
-- period's set must not interleave with an Activate of the same contacts, or a contact could
-- be counted under an identity that has just been folded. Merging again folds nothing more.
-- The audit record is written in the same step.
--
-- Uses: lib/identity.lua (root_of, resolve_identity, IDENTITY_VERSION), lib/contacts.lua
-- (read_contacts, identifiers_of), lib/index.lua (period_ordinal, index_add, index_fold,
-- mark_indexed_if_new), lib/audit.lua (read_audit, append_audit).
local members, counts, links, index, audit_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local period_key, expire_at_ms = ARGV[1], ARGV[2]
local ordinal = period_ordinal(period_key)
mark_indexed_if_new(links)
local audit = read_audit(3)
local contacts = read_contacts(7)
local survivor = resolve_identity(links, members, contacts[1][1], contacts[1][2], true).identity

local closed = redis.call('HEXISTS', counts, period_key .. ':closed') == 1
local survivor_counted = redis.call('SISMEMBER', members, survivor) == 1
local before = redis.call('SCARD', members)
local folded, uncounted, seen = 0, 0, {}
local touched = false

local function fold(key)
  local source = root_of(links, key, true)
  if source ~= survivor and not seen[source] then
    seen[source] = true
    folded = folded + 1
    redis.call('HSET', links, source, survivor)
    redis.call('HSETNX', links, survivor, survivor)
    index_fold(index, source, survivor, ordinal)
    if not closed and redis.call('SREM', members, source) == 1 then
      touched = true
      if survivor_counted then
        uncounted = uncounted + 1
      else
        -- the survivor takes the folded identity's place in the period
        redis.call('SADD', members, survivor)
        survivor_counted = true
      end
    end
  end
  if key ~= source and key ~= survivor then
    redis.call('HSET', links, key, survivor)
    index_add(index, survivor, { key }, ordinal)
  end
end

for c = 1, #contacts do
  for _, key in ipairs(identifiers_of(contacts[c])) do
    fold(key)
  end
end

if folded > 0 then
  -- who is who changed: the record each sidecar keeps of known contacts is out of date
  redis.call('HINCRBY', links, IDENTITY_VERSION, 1)
end
local active = redis.call('SCARD', members)
if active ~= before then
  redis.call('HSET', counts, period_key, active)
end
if touched and active > 0 then
  -- SREM may have emptied the set and SADD made it again, without its expiry
  redis.call('PEXPIREAT', members, expire_at_ms)
end
local changes = {}
if folded > 0 then
  changes = { { 'identities_folded', nil, folded }, { 'uncounted', nil, uncounted } }
end
append_audit(audit_key, audit, folded > 0, changes)
return { survivor, folded, uncounted, active }
