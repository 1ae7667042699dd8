-- set_exempt.lua: mark contacts exempt (allowed, never counted) or countable again.
--
-- KEYS[1]  exempt  SET of identity and identifier keys
-- KEYS[2]  links   HASH identifier key -> identity key, and IDENTITY_VERSION
-- KEYS[3]  audit   STREAM of the workspace's audit records (lib/audit.lua)
-- ARGV[1]  exempt        1 to exempt, 0 to make countable again
-- ARGV[2]  admin         the admin making the change
-- ARGV[3]  method        the Admin method (SetExempt)
-- ARGV[4]  now_ms        the instant of the change (unix ms)
-- ARGV[5]  retention_ms  how long audit records are kept
-- ARGV[6..] contacts     each as in decide.lua (lib/contacts.lua; the channel is not used
--                        here)
--
-- Every identifier of a contact and the identity each resolves to are marked, and decide.lua
-- treats a contact as exempt when its identity or any identifier of the request is marked, so
-- the exemption holds whichever identifier the contact arrives with and whatever it is linked
-- to later. A change raises the identity version (the links hash's field IDENTITY_VERSION),
-- which decide.lua reports. The audit record holds how many contacts had a mark changed
-- (contacts_exempted, or contacts_countable), never a key; a call that changed no mark
-- records a change of nothing.
--
-- Reply:
--   [1] changed  how many marks were added (or removed)
--   then per contact: identity
-- The identity is resolve_identity's (lib/identity.lua) with one difference: this script has
-- no period, so an identifier is known by its links alone, not by being counted. For a
-- contact whose counted identifier was never linked the key shown may then differ from
-- decide.lua's; the exemption does not, because every identifier and every identity it
-- resolves to is marked.
--
-- Why a script: each contact's identities are resolved and marked in the same step, so a merge
-- or a link made at the same moment cannot leave a contact half exempt; the audit record is
-- written in the same step.
--
-- Uses: lib/identity.lua (root_of, resolve_identity, IDENTITY_VERSION), lib/contacts.lua
-- (read_contacts, identifiers_of), lib/audit.lua (read_audit, append_audit).
local exempt, links, audit_key = KEYS[1], KEYS[2], KEYS[3]
local on = ARGV[1] == '1'
local audit = read_audit(2)
local out = { 0 }
local changed, contacts_changed = 0, 0
for _, contact in ipairs(read_contacts(6)) do
  out[#out + 1] = resolve_identity(links, nil, contact[1], contact[2], false).identity
  local marks = {}
  for _, key in ipairs(identifiers_of(contact)) do
    marks[#marks + 1] = key
    marks[#marks + 1] = (root_of(links, key, false))
  end
  local before = changed
  for _, key in ipairs(marks) do
    if on then
      changed = changed + redis.call('SADD', exempt, key)
    else
      changed = changed + redis.call('SREM', exempt, key)
    end
  end
  if changed > before then
    contacts_changed = contacts_changed + 1
  end
end
out[1] = changed
local changes = {}
if changed > 0 then
  -- who is exempt changed: the record each sidecar keeps of known contacts is out of date
  redis.call('HINCRBY', links, IDENTITY_VERSION, 1)
  changes = { { on and 'contacts_exempted' or 'contacts_countable', nil, contacts_changed } }
end
append_audit(audit_key, audit, changed > 0, changes)
return out
