-- lib/identity.lua: who a contact is. The one identity rule of the service (resolve_identity),
-- shared by decide.lua, merge.lua and set_exempt.lua, and the identity version they keep.
--
-- KEYS: none of its own; its functions are given the links hash (identifier key -> identity
-- key) and the period's members set of the script that calls them.
-- ARGV: none.
-- Reply: none: a library of functions (root_of, resolve_identity; the field name
-- IDENTITY_VERSION).
-- Why in a script: following and shortening link chains must not interleave with a merge
-- re-pointing them; it runs inside the one step of the script that calls it.
-- Uses: nothing.

-- The links hash's field counting changes of who is who (merges) and who is exempt: a sidecar
-- that sees it change forgets what it knew of the workspace's contacts. Identifier keys are
-- 14 bytes, so this 2-byte field can be none of them.
local IDENTITY_VERSION = '~v'

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

-- The identity of a contact, by the one rule: the highest-precedence *known* identity among
-- its primary identifiers (known: it has links, or it is counted in `members`), else the
-- identity of a visitor that has links (identified before), else its first identifier. A
-- contact of a visitor alone is that visitor. With `members` nil (no period at hand), an
-- identifier is known by its links alone.
--
-- Returns a table: identity; conflict (two or more known identities); roots[i] and known[i]
-- of each primary; vroot and vlinked of the visitor; known_order, the distinct known
-- identities in precedence order.
local function resolve_identity(links, members, prim, visitor, write)
  local r = { roots = {}, known = {}, known_order = {}, conflict = false }
  if #prim == 1 and not visitor then
    -- one identifier: it is the identity whether known or not, and nothing can conflict
    local root, linked = root_of(links, prim[1], write)
    r.roots[1], r.known[1], r.identity = root, linked, root
    return r
  end
  local seen = {}
  local function note(identity)
    if not seen[identity] then
      seen[identity] = true
      r.known_order[#r.known_order + 1] = identity
    end
  end
  for i = 1, #prim do
    local root, linked = root_of(links, prim[i], write)
    r.roots[i] = root
    r.known[i] = linked or (members ~= nil and redis.call('SISMEMBER', members, root) == 1)
    if r.known[i] then
      note(root)
    end
  end
  if visitor then
    r.vroot, r.vlinked = root_of(links, visitor, write)
    if r.vlinked then
      note(r.vroot)
    end
  end
  if #prim == 0 then
    r.identity = r.vroot
  else
    r.identity = r.known_order[1] or r.roots[1]
    r.conflict = #r.known_order >= 2
  end
  return r
end
