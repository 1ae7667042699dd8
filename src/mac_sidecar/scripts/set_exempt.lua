-- set_exempt.lua: mark contacts exempt (allowed, never counted) or countable again.
--
-- KEYS[1]  exempt set (identity and identifier keys)
-- KEYS[2]  links hash
-- ARGV[1]  1 to exempt, 0 to make countable again
-- ARGV[2..] contacts, encoded as in decide.lua
--
-- Returns { changed, identity key of each contact... }.
-- Uses lib/identity.lua (root_of, read_contacts).
--
-- Why a script: each contact's identity is resolved and marked in the same step, so a merge
-- or a link made at the same moment cannot leave an identity half exempt.
local exempt, links = KEYS[1], KEYS[2]
local on = ARGV[1] == '1'
local out = { 0 }
local changed = 0
for _, contact in ipairs(read_contacts(2)) do
  local identity = root_of(links, contact[1][1] or contact[2], false)
  out[#out + 1] = identity
  local keys = { identity }
  for _, key in ipairs(contact[1]) do
    keys[#keys + 1] = key
  end
  if contact[2] then
    keys[#keys + 1] = contact[2]
  end
  for _, key in ipairs(keys) do
    if on then
      changed = changed + redis.call('SADD', exempt, key)
    else
      changed = changed + redis.call('SREM', exempt, key)
    end
  end
end
out[1] = changed
return out
