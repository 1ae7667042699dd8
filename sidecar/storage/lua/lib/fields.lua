-- lib/fields.lua: a hash's fields read by name.
--
-- KEYS: none of its own; read_fields is given the key of the hash it reads.
-- ARGV: none.
-- Reply: none: a library of one function (read_fields). Like every lib file, it is put in
-- front of the scripts that name it on their Uses: line when the service loads them
-- (storage/scripts.py).
-- Why in a script: it only reads, inside the one step of the script that calls it.
-- Uses: nothing.

-- HMGET `key` `...` as a table from field name to value (false where the field is missing).
local function read_fields(key, ...)
  local names = { ... }
  local values = redis.call('HMGET', key, unpack(names))
  local found = {}
  for i, name in ipairs(names) do
    found[name] = values[i]
  end
  return found
end

