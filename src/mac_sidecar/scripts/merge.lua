-- merge.lua: fold identities into one; the current period's count drops by the number of
-- folded identities that were counted alongside the survivor.
--
-- KEYS[1]  members set of the current period
-- KEYS[2]  counts hash
-- KEYS[3]  links hash
-- ARGV[1]  period key
-- ARGV[2..] the target contact, then the source contacts, each encoded as in decide.lua:
--           n, n primary identifier keys in precedence order, the visitor key or ''
--
-- Returns { survivor identity key, identities folded, count dropped by, active after }.
-- Uses lib/identity.lua (root_of, read_contacts).
--
-- Why a script: resolving the identities, re-pointing them and moving their place in the
-- period's set must not interleave with an Activate of the same contacts, or a contact could
-- be counted under an identity that has just been folded. Merging again folds nothing more.
local members, counts, links = KEYS[1], KEYS[2], KEYS[3]
local contacts = read_contacts(2)

local function first_identifier(contact)
  return contact[1][1] or contact[2]
end

local survivor = root_of(links, first_identifier(contacts[1]), true)
local survivor_counted = redis.call('SISMEMBER', members, survivor) == 1
local before = redis.call('SCARD', members)
local folded, dropped, seen = 0, 0, {}

for c = 2, #contacts do
  local identifiers = { unpack(contacts[c][1]) }
  if contacts[c][2] then
    identifiers[#identifiers + 1] = contacts[c][2]
  end
  for _, key in ipairs(identifiers) do
    local source = root_of(links, key, true)
    if source ~= survivor and not seen[source] then
      seen[source] = true
      folded = folded + 1
      redis.call('HSET', links, source, survivor)
      redis.call('HSETNX', links, survivor, survivor)
      if redis.call('SREM', members, source) == 1 then
        if survivor_counted then
          dropped = dropped + 1
        else
          -- the survivor takes the folded identity's place in the period
          redis.call('SADD', members, survivor)
          survivor_counted = true
        end
      end
    end
    if key ~= source and key ~= survivor then
      redis.call('HSET', links, key, survivor)
    end
  end
end

local active = redis.call('SCARD', members)
if active ~= before then
  redis.call('HSET', counts, ARGV[1], active)
end
return { survivor, folded, dropped, active }
