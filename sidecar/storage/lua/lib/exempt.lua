-- lib/exempt.lua: whether a contact is exempt (allowed, never counted).
--
-- KEYS: none of its own; decide.lua's input.key.exempt (the exempt set of identity and
-- identifier keys, set_exempt.lua's).
-- ARGV: none of its own; input.dry of decide.lua (a dry run writes nothing).
-- Reply: none: a library of one function (is_exempt).
-- Why in a script: an exemption found through an identifier is carried to the identity it
-- belongs to in the same step that resolved it, so no merge can come between.
-- Uses: lib/contacts.lua (identifiers_of).

-- Exempt: the identity, or any identifier of the contact, was marked exempt. An exemption
-- found through an identifier is carried to the identity it now belongs to.
local function is_exempt(input, identity, contact)
  local exempt = input.key.exempt
  if redis.call('SISMEMBER', exempt, identity) == 1 then
    return true
  end
  for _, key in ipairs(identifiers_of(contact)) do
    if key ~= identity and redis.call('SISMEMBER', exempt, key) == 1 then
      if not input.dry then
        redis.call('SADD', exempt, identity)
      end
      return true
    end
  end
  return false
end
