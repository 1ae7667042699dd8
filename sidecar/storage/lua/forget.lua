-- forget.lua: erase a person: every link of the identity a contact resolves to, its entry in
-- the identity index, its exemption, its conflict flags, and its place in every period's
-- members, where a random anonymous member takes it (the counts stay as they were).
--
-- KEYS[1]  links    HASH identifier key -> identity key, and IDENTITY_VERSION
-- KEYS[2]  index    HASH identity key -> its entry (lib/index.lua): its identifiers' keys
-- KEYS[3]  exempt   SET of identity and identifier keys
-- KEYS[4]  audit    STREAM of the workspace's audit records (lib/audit.lua)
-- KEYS[5..] periods each period that may still hold members, the current one first: its
--                   members (SET of identity keys), then its flags (HASH; c:<key><key>
--                   names two identities)
-- ARGV[1]  seed          random bytes, never stored: the anonymous members are derived from it
-- ARGV[2]  admin         the admin forgetting
-- ARGV[3]  method        the Admin method (Forget)
-- ARGV[4]  now_ms        the instant of the call (unix ms)
-- ARGV[5]  retention_ms  how long audit records are kept
-- ARGV[6..] contact      the person, as in decide.lua (lib/contacts.lua; the channel is not
--                        used)
--
-- The identity is resolve_identity's (lib/identity.lua) with the current period's members,
-- as a decision would resolve the contact now. Its identifiers are the identity, the keys its
-- index entry lists (those of identities folded into it among them), and those of the
-- contact that resolve to it. Each is removed from the links hash, the index, the exempt set
-- and every period's members; each member removed is replaced by an anonymous one
-- (sha1(seed, n), 14 bytes: as far out of reach of a real key as two real keys are of each
-- other), added before the removal so the set never empties and keeps its expiry. A change
-- raises the identity version (IDENTITY_VERSION), so every sidecar's record of known contacts
-- for the workspace is dropped at its next reply from storage.
--
-- Reply:
--   [1] forgotten            1 when anything was known of the identity, else 0
--   [2] identifiers_removed  its identifiers erased (0 when not forgotten)
--   [3] periods              periods it was counted in: it stays counted there, anonymously
--
-- Why a script: resolving the person and erasing every trace of it is one step, so an
-- Activate of the same person is either before it (and forgotten with it) or after it (a new
-- contact), never half of each. Forgetting again finds nothing and changes nothing. The audit
-- record (identifiers_removed and periods: counts, never a key) is written in the same step;
-- a Forget that found nothing records that it changed nothing.
--
-- Uses: lib/identity.lua (root_of, resolve_identity, IDENTITY_VERSION), lib/contacts.lua
-- (read_contacts, identifiers_of), lib/index.lua (index_read), lib/audit.lua (read_audit,
-- append_audit).
local FIXED_KEYS = 4 -- the periods' keys follow
local links, index, exempt, audit_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local seed = ARGV[1]
local audit = read_audit(2)
local ARG_CONTACT = 6

local contact = read_contacts(ARG_CONTACT)[1]
local identity = resolve_identity(links, KEYS[FIXED_KEYS + 1], contact[1], contact[2],
  false).identity

-- the identity's identifiers: itself, its entry's keys, the contact's that resolve to it
local keys, listed = { identity }, { [identity] = true }
local function collect(key)
  if not listed[key] then
    listed[key] = true
    keys[#keys + 1] = key
  end
end
local _, indexed = index_read(index, identity)
for _, key in ipairs(indexed or {}) do
  collect(key)
end
for _, key in ipairs(identifiers_of(contact)) do
  if (root_of(links, key, false)) == identity then
    collect(key)
  end
end

local known = indexed ~= nil
for _, key in ipairs(keys) do
  if redis.call('HDEL', links, key) == 1 then
    known = true
  end
  if redis.call('SREM', exempt, key) == 1 then
    known = true
  end
end
redis.call('HDEL', index, identity)

-- an anonymous 14-byte member, the n-th of this call
local anonymous = 0
local function anonymous_member()
  anonymous = anonymous + 1
  local hex = redis.sha1hex(seed .. ':' .. anonymous)
  local bytes = {}
  for i = 1, 27, 2 do
    bytes[#bytes + 1] = string.char(tonumber(string.sub(hex, i, i + 1), 16))
  end
  return table.concat(bytes)
end

local periods = 0
for k = FIXED_KEYS + 1, #KEYS, 2 do
  local members, flags = KEYS[k], KEYS[k + 1]
  local counted = false
  for _, key in ipairs(keys) do
    if redis.call('SISMEMBER', members, key) == 1 then
      redis.call('SADD', members, anonymous_member())
      redis.call('SREM', members, key)
      counted = true
    end
  end
  if counted then
    periods = periods + 1
    known = true
  end
  for _, flag in ipairs(redis.call('HKEYS', flags)) do
    if #flag == 30 and string.sub(flag, 1, 2) == 'c:'
        and (listed[string.sub(flag, 3, 16)] or listed[string.sub(flag, 17, 30)]) then
      redis.call('HDEL', flags, flag)
    end
  end
end

if not known then
  append_audit(audit_key, audit, false, {})
  return { 0, 0, 0 }
end
-- who is who changed: the record each sidecar keeps of known contacts is out of date
redis.call('HINCRBY', links, IDENTITY_VERSION, 1)
append_audit(audit_key, audit, true,
  { { 'identifiers_removed', nil, #keys }, { 'periods', nil, periods } })
return { 1, #keys, periods }
