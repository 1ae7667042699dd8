-- lib/links.lua: a contact resolved for a decision: its identity by the one rule
-- (lib/identity.lua), what is new linked to it, and a visitor seen before it was identified
-- folded into it.
--
-- KEYS: none of its own; decide.lua's input.key.links (identifier key -> identity key; an
-- identity that has links maps to itself), input.key.members and input.key.index (the
-- identity index: each identifier linked here is added to its identity's entry).
-- ARGV: none of its own; input.dry (a dry run writes nothing), input.now and input.ordinal
-- (the period's, lib/index.lua) of decide.lua.
-- Reply: none: a library of one function (resolve), which returns the identity, whether the
-- identifiers belonged to two identities (conflict), and whether a counted visitor was this
-- contact (visitor merged: the count dropped by one, in state.active).
-- Why in a script: resolving and linking in one step is what keeps two calls from linking
-- one identifier to two identities.
-- Uses: lib/identity.lua (root_of, resolve_identity), lib/events.lua (emit, once),
-- lib/usage.lua (count_channel), lib/members.lua (is_member), lib/index.lua (index_add,
-- mark_indexed_if_new).

local function resolve(input, state, contact)
  local prim, visitor = contact[1], contact[2]
  local links, write = input.key.links, not input.dry
  if #prim == 1 and not visitor then
    -- what resolve_identity answers for one identifier, without its tables: the common case
    return (root_of(links, prim[1], write)), false, false
  end
  local r = resolve_identity(links, input.key.members, prim, visitor, write)
  local identity = r.identity
  if #prim == 0 then
    return identity, false, false
  end
  local absorb = visitor and not r.vlinked and r.vroot ~= identity
  if write then
    local wrote = {}
    for i = 1, #prim do
      if not r.known[i] and r.roots[i] ~= identity then
        wrote[#wrote + 1] = prim[i]
      end
    end
    if absorb then
      wrote[#wrote + 1] = visitor
    end
    if #wrote > 0 then
      -- the workspace's first links have nothing older to file
      mark_indexed_if_new(links)
      for _, key in ipairs(wrote) do
        redis.call('HSET', links, key, identity)
      end
      redis.call('HSETNX', links, identity, identity)
      index_add(input.key.index, identity, wrote, input.ordinal)
    end
  end
  local visitor_merged = false
  if absorb and is_member(input, state, r.vroot) then
    visitor_merged = true
    if write then
      redis.call('SREM', input.key.members, r.vroot)
      state.removed = true
      count_channel(state, contact[3], -1) -- a visitor is first counted on its own channel
    end
    state.active = state.active - 1
  end
  if r.conflict and write then
    -- one event per pair of identities and period
    local other = r.known_order[2]
    local pair = identity < other and (identity .. other) or (other .. identity)
    if once(input, state, 'c:' .. pair) then
      emit(input, state, 'IDENTITY_CONFLICT', state.active, state.limit, input.now, 0)
    end
  end
  return identity, r.conflict, visitor_merged
end
