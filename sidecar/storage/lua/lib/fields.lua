-- lib/fields.lua: hash fields read by name. The service puts it in front of the scripts that
-- use it when it loads them.

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
