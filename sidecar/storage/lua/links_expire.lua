-- links_expire.lua: drop the links of identities not counted for MAC_RETENTION_PERIODS + 1
-- periods: one page of the identity index at a time (the links sweep pages through it with
-- HSCAN, off the decision path).
--
-- KEYS[1]  links   HASH identifier key -> identity key, and IDENTITY_VERSION
-- KEYS[2]  index   HASH identity key -> its entry (lib/index.lua)
-- KEYS[3]  exempt  SET of identity and identifier keys
-- ARGV[1]  cutoff      an ordinal (lib/index.lua): entries stamped at or before it expire
-- ARGV[2..] identities fields of the index (other fields than 14-byte keys are skipped)
--
-- Redis 7.0 cannot expire a hash's fields, so the index's stamps say who expires: an entry is
-- stamped with the last period its identity was counted (or linked) in. An identity stamped
-- at or before the cutoff is in no period's members any more (they expire after
-- MAC_RETENTION_PERIODS), so nothing counted depends on its links: they are deleted with its
-- entry, and the person arriving again is a new contact. An exempt identity (or one with an
-- exempt identifier) keeps its links, so its exemption holds whichever identifier it comes
-- with. Only keys that still resolve to the identity are deleted.
--
-- Reply:
--   [1] expired  identities whose links were deleted
--   [2] removed  links deleted (the identities' own among them)
--
-- Why a script: the stamp is read in the same step that deletes, so a decision counting the
-- identity at that moment either comes before (and keeps it) or after (a new contact).
--
-- Uses: lib/identity.lua (root_of), lib/index.lua (index_read).
local links, index, exempt = KEYS[1], KEYS[2], KEYS[3]
local cutoff = tonumber(ARGV[1])
local expired, removed = 0, 0

local function is_exempt(identity, keys)
  if redis.call('SISMEMBER', exempt, identity) == 1 then
    return true
  end
  for _, key in ipairs(keys) do
    if redis.call('SISMEMBER', exempt, key) == 1 then
      return true
    end
  end
  return false
end

for i = 2, #ARGV do
  local identity = ARGV[i]
  local stamp, keys = nil, nil
  if #identity == 14 then
    stamp, keys = index_read(index, identity)
  end
  if stamp and stamp <= cutoff and not is_exempt(identity, keys) then
    for _, key in ipairs(keys) do
      if (root_of(links, key, false)) == identity then
        removed = removed + redis.call('HDEL', links, key)
      end
    end
    removed = removed + redis.call('HDEL', links, identity)
    redis.call('HDEL', index, identity)
    expired = expired + 1
  end
end
return { expired, removed }
