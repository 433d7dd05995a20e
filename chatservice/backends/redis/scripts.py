"""
The Lua scripts the nodes run on Redis: each is atomic, so two nodes that
claim one nickname at once cannot both get it.

A nickname is held by two keys, its folded form and its look-alike
skeleton (``nick:<key>``, ``looks:<skeleton>``), whose value is the owner:
the session's id, ``<node>.<n>``.
"""

from __future__ import annotations

#: KEYS: the nickname's key, its look-alike key; ARGV: the owner.  Answers
#: ``ok``, or which key another owner holds (``nick`` or ``looks``) and who.
CLAIM = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return {'nick', held} end
local twin = redis.call('GET', KEYS[2])
if twin and twin ~= ARGV[1] then return {'looks', twin} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1])
return {'ok', ARGV[1]}
"""

#: KEYS: nickname and look-alike keys; ARGV: the owner.  Deletes those this
#: owner holds (not one claimed since by someone else).
RELEASE = """
local freed = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    freed = freed + 1
  end
end
return freed
"""

#: KEYS: the dead node's members hash, the set of nodes; ARGV: the dead
#: node, the key prefix.  Only the first node to run it for a dead node
#: gets 1 (the others 0): that one announces the node's members gone.
#: Frees every nickname the node's members held.
REAP = """
if redis.call('SREM', KEYS[2], ARGV[1]) == 0 then return 0 end
local members = redis.call('HGETALL', KEYS[1])
for i = 1, #members, 2 do
  local owner = members[i]
  local ok, member = pcall(cjson.decode, members[i + 1])
  if ok and type(member) == 'table' then
    for _, kind in ipairs({'nick:', 'looks:'}) do
      local field = member[kind == 'nick:' and 'k' or 'l']
      if type(field) == 'string' then
        local key = ARGV[2] .. kind .. field
        if redis.call('GET', key) == owner then redis.call('DEL', key) end
      end
    end
  end
end
redis.call('DEL', KEYS[1])
return 1
"""

#: KEYS: one history stream per room of the frame; ARGV: the channel, the
#: frame, the cap (messages per room), the oldest stream id kept (``""``:
#: any age), ``1`` for a replayed frame (``0``: not), then for each key how
#: many messages and, for each, its id, time, room, nickname, text, action
#: (``1``/``0``), door and notice (``1``/``0``).  Appends them and then
#: publishes the frame, at once: a node that gets the frame finds its
#: messages in the history already.  A replayed frame may have been kept
#: already (its reply lost with the connection): its messages whose id the
#: stream's newest entries have are not appended again.  Answers PUBLISH's
#: answer.
KEEP_AND_PUBLISH = """
local at = 6
for k = 1, #KEYS do
  local n = tonumber(ARGV[at])
  at = at + 1
  local kept = {}
  if ARGV[5] == '1' then
    for _, entry in ipairs(redis.call('XREVRANGE', KEYS[k], '+', '-',
                                      'COUNT', ARGV[3])) do
      local fields = entry[2]
      for j = 1, #fields, 2 do
        if fields[j] == 'id' then kept[fields[j + 1]] = true end
      end
    end
  end
  for _ = 1, n do
    if not kept[ARGV[at]] then
      redis.call('XADD', KEYS[k], 'MAXLEN', '~', ARGV[3], '*',
        'id', ARGV[at], 'at', ARGV[at + 1], 'room', ARGV[at + 2],
        'nick', ARGV[at + 3], 'text', ARGV[at + 4], 'action', ARGV[at + 5],
        'door', ARGV[at + 6], 'notice', ARGV[at + 7])
    end
    at = at + 8
  end
  if ARGV[4] ~= '' then redis.call('XTRIM', KEYS[k], 'MINID', '~', ARGV[4]) end
end
return redis.call('PUBLISH', ARGV[1], ARGV[2])
"""

#: KEYS: a room's history stream; ARGV: how many of the newest entries to
#: look at, the page's size, ``1`` for its newest messages (``0``: oldest),
#: the ``after`` message id and time, the ``before`` id and time, the
#: oldest time kept (``""``: none for each).  Answers ``{'ok', entries}``
#: (each entry's fields, oldest first) or ``{'unknown', id}``.  The same
#: selection as ``chatservice.stores.base.page_of``, in Redis: only the
#: page travels.
PAGE = """
local entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[1])
local oldest = tonumber(ARGV[8])
local list = {}
for i = #entries, 1, -1 do
  local fields = entries[i][2]
  local m = {}
  for j = 1, #fields, 2 do m[fields[j]] = fields[j + 1] end
  local t = tonumber(m['at']) or 0
  if not oldest or t >= oldest then list[#list + 1] = {m['id'], t, fields} end
end
local function find(id)
  for i = #list, 1, -1 do if list[i][1] == id then return i end end
  return nil
end
local start, stop = 1, #list + 1
if ARGV[4] ~= '' then
  local i = find(ARGV[4])
  if not i then return {'unknown', ARGV[4]} end
  start = i + 1
elseif ARGV[5] ~= '' then
  local t = tonumber(ARGV[5])
  start = #list + 1
  for i = 1, #list do if list[i][2] > t then start = i break end end
end
if ARGV[6] ~= '' then
  local i = find(ARGV[6])
  if not i then return {'unknown', ARGV[6]} end
  stop = i
elseif ARGV[7] ~= '' then
  local t = tonumber(ARGV[7])
  stop = #list + 1
  for i = 1, #list do if list[i][2] >= t then stop = i break end end
end
local chosen = {}
local first, last = start, stop - 1
local n = tonumber(ARGV[2])
if last - first + 1 > n then
  if ARGV[3] == '1' then first = last - n + 1 else last = first + n - 1 end
end
for i = first, last do chosen[#chosen + 1] = list[i][3] end
return {'ok', chosen}
"""
