-- lib/audit.lua: the audit trail: one record for each Admin call that changes a workspace,
-- appended to the workspace's audit stream in the step that makes the change.
--
-- KEYS: none of its own; append_audit is given the key of the workspace's audit stream
-- (keys.audit, in the workspace's slot).
-- ARGV: none of its own; read_audit reads the four audit places of the calling script,
-- from the position given: admin (the admin's name), method (the Admin method), now_ms
-- (the call's instant, unix ms) and retention_ms (how long records are kept).
-- Reply: none: a library of functions (read_audit, append_audit).
-- Why in a script: a record is written in the same step as the change it records, so there
-- is never a change without its record, nor a record of a change that did not happen.
-- Uses: nothing.

-- The audit places of ARGV from index `first`, as a table.
local function read_audit(first)
  return {
    admin = ARGV[first],
    method = ARGV[first + 1],
    now = tonumber(ARGV[first + 2]),
    retention_ms = tonumber(ARGV[first + 3]),
  }
end

-- Append a record to the stream `key`: `audit` as read_audit returns it, `changed` a
-- boolean, `changes` a list of { field, before, after } (before nil for a count, which has
-- an after alone). Never give it a contact's identifier or digest: records hold counts and
-- settings only. Each entry's id is the call's instant (never below the last entry's), its
-- fields: admin, method, at (unix ms), changed (0 or 1), then b:<field> (the value before)
-- and a:<field> (after) of each change in order. Records older than the retention go
-- (exactly: a trail is small), and the stream itself when no record came for as long.
local function append_audit(key, audit, changed, changes)
  local ms = audit.now
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
  if last then
    local last_ms = tonumber(string.match(last[1], '^(%d+)'))
    if last_ms > ms then
      ms = last_ms -- another sidecar's clock ran ahead: the ids still increase
    end
  end
  local entry = {
    'admin', audit.admin, 'method', audit.method, 'at', audit.now,
    'changed', changed and 1 or 0,
  }
  for _, change in ipairs(changes) do
    if change[2] ~= nil then
      entry[#entry + 1] = 'b:' .. change[1]
      entry[#entry + 1] = change[2]
    end
    entry[#entry + 1] = 'a:' .. change[1]
    entry[#entry + 1] = change[3]
  end
  local oldest = math.max(audit.now - audit.retention_ms, 0)
  redis.call('XADD', key, 'MINID', oldest, ms .. '-*', unpack(entry))
  -- relative: Redis's clock need not agree with the sidecars'
  redis.call('PEXPIRE', key, audit.retention_ms)
end
