-- set_exempt.lua: mark contacts exempt (allowed, never counted) or countable again.
--
-- KEYS[1]  exempt set (identity and identifier keys)
-- KEYS[2]  links hash
-- ARGV[1]  1 to exempt, 0 to make countable again
-- ARGV[2..] contacts, encoded as in decide.lua
--
-- Every identifier of a contact and the identity each resolves to are marked, and decide.lua
-- treats a contact as exempt when its identity or any identifier of the request is marked, so
-- the exemption holds whichever identifier the contact arrives with and whatever it is linked
-- to later.
--
-- Returns { changed, identity key of each contact... } (the identity of its first identifier
-- that has links, else of its first identifier).
-- Uses lib/identity.lua (root_of, read_contacts).
--
-- Why a script: each contact's identities are resolved and marked in the same step, so a merge
-- or a link made at the same moment cannot leave a contact half exempt.
local exempt, links = KEYS[1], KEYS[2]
local on = ARGV[1] == '1'
local out = { 0 }
local changed = 0
for _, contact in ipairs(read_contacts(2)) do
  local keys = { unpack(contact[1]) }
  if contact[2] then
    keys[#keys + 1] = contact[2]
  end
  local identity = nil
  local marks = {}
  for _, key in ipairs(keys) do
    local root, linked = root_of(links, key, false)
    if linked and not identity then
      identity = root
    end
    marks[#marks + 1] = key
    marks[#marks + 1] = root
  end
  out[#out + 1] = identity or keys[1]
  for _, key in ipairs(marks) do
    if on then
      changed = changed + redis.call('SADD', exempt, key)
    else
      changed = changed + redis.call('SREM', exempt, key)
    end
  end
end
out[1] = changed
return out
