-- lib/contacts.lua: the contacts a script is given, as codec.encode_contacts writes them.
--
-- KEYS: none.
-- ARGV: read_contacts reads the script's ARGV from a given position to the end: each contact
-- as n, then n primary identifier keys in precedence order (id, email, phone), then the
-- visitor key or '', then the channel or ''.
-- Reply: none: a library of functions (read_contacts, identifiers_of).
-- Why in a script: it only reads ARGV, inside the one step of the script that calls it.
-- Uses: nothing.

-- The contacts encoded in ARGV from index `first`, as a list of
-- { primaries, visitor|false, channel }.
local function read_contacts(first)
  local found = {}
  local i = first
  while i <= #ARGV do
    local n = tonumber(ARGV[i])
    local prim = {}
    for j = 1, n do
      prim[j] = ARGV[i + j]
    end
    local visitor = ARGV[i + n + 1]
    found[#found + 1] = { prim, visitor ~= '' and visitor or false, ARGV[i + n + 2] }
    i = i + n + 3
  end
  return found
end

-- Every identifier key of a contact read by read_contacts: its primaries, then its visitor.
local function identifiers_of(contact)
  local keys = { unpack(contact[1]) }
  if contact[2] then
    keys[#keys + 1] = contact[2]
  end
  return keys
end
