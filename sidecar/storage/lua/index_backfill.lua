-- index_backfill.lua: add links written before the identity index existed to it: one page of
-- the links hash's fields at a time (the links sweep pages through it with HSCAN once per
-- workspace, and Forget does before its first use in a workspace).
--
-- KEYS[1]  links  HASH identifier key -> identity key, and IDENTITY_VERSION
-- KEYS[2]  index  HASH identity key -> its entry (lib/index.lua)
-- ARGV[1]  ordinal   the workspace's current period's ordinal (lib/index.lua): the stamp of
--                    an entry made here, so the links of a contact counted now are kept
-- ARGV[2..] keys     fields of the links hash (other fields than 14-byte keys are skipped)
--
-- Each key is added to the entry of the identity it resolves to now; an entry made here is
-- stamped with the current period (as if counted now: it is kept MAC_RETENTION_PERIODS + 1
-- periods at least), an existing entry keeps its stamp.
--
-- Reply:
--   [1] filed  linked keys filed under their identity's entry (already there or not)
--
-- Why a script: the identity a key resolves to is read in the same step that files the key
-- under it, so a merge re-pointing it cannot come between (a merge moves the entry after).
--
-- Uses: lib/identity.lua (root_of), lib/index.lua (index_add).
local links, index = KEYS[1], KEYS[2]
local ordinal = tonumber(ARGV[1])
local filed = 0
for i = 2, #ARGV do
  local key = ARGV[i]
  if #key == 14 then
    local root, linked = root_of(links, key, false)
    if linked then
      local fresh = redis.call('HEXISTS', index, root) == 0
      index_add(index, root, { key }, fresh and ordinal or 0)
      filed = filed + 1
    end
  end
end
return { filed }
