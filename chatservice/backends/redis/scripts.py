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
