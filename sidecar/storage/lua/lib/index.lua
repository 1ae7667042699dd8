-- lib/index.lua: the identity index: for each identity that has links, the last period it was
-- counted in and the keys of its identifiers. Forget reads an identity's identifiers from it
-- (without scanning the links hash), and the links sweep (links_expire.lua) drops the links of
-- identities not counted for MAC_RETENTION_PERIODS + 1 periods.
--
-- KEYS: none of its own; its functions are given the index hash (identity key -> its entry):
-- decide.lua's input.key.index, merge.lua's and forget.lua's KEYS.
-- ARGV: none.
-- Reply: none: a library of functions (period_ordinal, index_read, index_add, index_seen,
-- index_fold, entry_keys, mark_indexed_if_new; the field name INDEXED).
-- An entry is STAMP decimal digits, the ordinal (year x 12 + month - 1) of the last period the
-- identity was counted in (or linked in), then the 14-byte keys of its identifiers other than
-- the identity itself, each once. Redis 7.0 has no expiry of a hash's fields, so the stamp is
-- what the sweep reads; it is written only when an identity with an entry is first counted in
-- a period (once per identity and period) or gets a new link.
-- Why in a script: an entry moves in the same step as the links it lists.
-- Uses: nothing.

local STAMP = 5
-- The links hash's field saying every link of the workspace is in its index: set when the
-- links hash is made by a script that indexes what it links, or by the backfill (the links
-- sweep, storage/forgetting.py) once it has filed the older ones. Two bytes: no identifier.
local INDEXED = '~i'
local KEY_LEN = 14

-- The ordinal of a period key ('2026-11', or '2026-11@<unix s>'): year x 12 + month - 1.
local function period_ordinal(period_key)
  return tonumber(string.sub(period_key, 1, 4)) * 12 + tonumber(string.sub(period_key, 6, 7)) - 1
end

-- The identifier keys of an entry's text.
local function entry_keys(value)
  local keys = {}
  for i = STAMP + 1, #value, KEY_LEN do
    keys[#keys + 1] = string.sub(value, i, i + KEY_LEN - 1)
  end
  return keys
end

-- An identity's entry: its stamp and its identifier keys; nil when it has none.
local function index_read(index, identity)
  local value = redis.call('HGET', index, identity)
  if not value then
    return nil
  end
  return tonumber(string.sub(value, 1, STAMP)), entry_keys(value)
end

local function has_key(body, key)
  for i = 1, #body, KEY_LEN do
    if string.sub(body, i, i + KEY_LEN - 1) == key then
      return true
    end
  end
  return false
end

-- Add `keys` (those it lacks, the identity itself never) to the identity's entry, made when it
-- has none, and raise its stamp to `ordinal`.
local function index_add(index, identity, keys, ordinal)
  local value = redis.call('HGET', index, identity)
  local stamp, body = ordinal, ''
  if value then
    stamp = math.max(tonumber(string.sub(value, 1, STAMP)), ordinal)
    body = string.sub(value, STAMP + 1)
  end
  local changed = not value or stamp ~= tonumber(string.sub(value, 1, STAMP))
  for _, key in ipairs(keys) do
    if key ~= identity and #key == KEY_LEN and not has_key(body, key) then
      body = body .. key
      changed = true
    end
  end
  if changed then
    redis.call('HSET', index, identity, string.format('%05d', stamp) .. body)
  end
end

-- The identity was counted in the period of `ordinal`: raise the stamp of its entry, if it
-- has one (an identity without links has nothing to expire).
local function index_seen(index, identity, ordinal)
  local value = redis.call('HGET', index, identity)
  if value and tonumber(string.sub(value, 1, STAMP)) < ordinal then
    redis.call('HSET', index, identity, string.format('%05d', ordinal) ..
      string.sub(value, STAMP + 1))
  end
end

-- `source` was folded into `survivor`: its entry (and itself) joins the survivor's.
local function index_fold(index, source, survivor, ordinal)
  local stamp, keys = index_read(index, source)
  keys = keys or {}
  keys[#keys + 1] = source
  index_add(index, survivor, keys, math.max(stamp or ordinal, ordinal))
  redis.call('HDEL', index, source)
end

-- Before the first link of a workspace is written: a links hash with no link yet (nothing,
-- or the identity version alone) has nothing to file, so it is marked INDEXED.
local function mark_indexed_if_new(links)
  if redis.call('HLEN', links) == redis.call('HEXISTS', links, '~v') then
    redis.call('HSET', links, INDEXED, 1)
  end
end
