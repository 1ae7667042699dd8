-- lib/identity.lua: identity resolution shared by the scripts that need it; the service puts
-- it in front of decide.lua, merge.lua and set_exempt.lua when it loads them.

-- The identity an identifier belongs to in the links hash, and whether it has links. Chains
-- left by merges are followed and, when `write`, shortened to point at the identity.
local function root_of(links, key, write)
  local parent = redis.call('HGET', links, key)
  if not parent then
    return key, false
  end
  local node = parent
  for _ = 1, 32 do
    local up = redis.call('HGET', links, node)
    if not up or up == node then
      break
    end
    node = up
  end
  if node ~= parent and write then
    redis.call('HSET', links, key, node)
  end
  return node, true
end

-- The contacts encoded in ARGV from index `first`: each as n, n primary identifier keys in
-- precedence order, then the visitor key or ''. Returns a list of { primaries, visitor|false }.
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
    found[#found + 1] = { prim, visitor ~= '' and visitor or false }
    i = i + n + 2
  end
  return found
end
