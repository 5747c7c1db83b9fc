#!lua name=parley_v1
--[[
Parley's shared state in Redis: one function per SharedState operation, each atomic, so nothing any
instance does can slip between a check and a write (see lib/storage/redis_state.ts, which loads
this library with FUNCTION LOAD REPLACE and calls it with FCALL).

Every function takes the key prefix P as its first argument (keys are not declared: Parley runs on
one Redis, not a cluster). Key layout, P = --redis-prefix (default "parley"):

  P:seq                    string  the last event id: one order for every instance
  P:events:ROOM            stream  the room's last --history events, entry id 0-ID, field j: the
                                   event's JSON without its text (so a delete can erase the text)
  P:texts:ROOM             hash    ID -> text (messages, edits, topics)
  P:marks:ROOM             hash    ID -> "edited" | "deleted" (messages)
  P:editsof:ROOM           hash    message ID -> its edit events' ids, comma-separated
  P:room:ROOM              hash    dropped (highest id retention removed), topic, a and b (the two
                                   sessions of a private room)
  P:members:ROOM           zset    nicks of the members, score 0: lexicographic order for paging
  P:rooms                  zset    public room names, score 0
  P:private                set     private room names
  P:dmsends:ROOM           set     "SESSION|CLIENTID" of sends in a private room (gone with it)
  P:session:ID             hash    token, nick, key, createdAt, address, moderator (0|1), forgot
                                   (the last event it could read of a membership it no longer
                                   keeps: polls from before it answer gap)
  P:token:TOKEN            string  session id
  P:nick:KEY               string  session id holding the nick (key = full case folding)
  P:addr:ADDRESS           set     session ids created from an address (bans by address)
  P:memberships:ID         hash    ROOM -> "JOINID" or "JOINID:LEFTID", then ";JOINID:LEFTID" per
                                   earlier stretch in the room (oldest first, at most 4), then
                                   ";!LEFTID" once older ones were forgotten (the newest leave of
                                   those: polls from before it answer gap)
  P:sends:ID               hash    CLIENTID -> the event that send stored (JSON, with text)
  P:sendorder:ID           zset    CLIENTID by event id: the last 1000 are kept
  P:presence               zset    session ids by last seen (ms): every live session is here
  P:bans                   hash    ban id -> JSON {id, nick, key, address, until, reason, by, createdAt}
  P:rate:PURPOSE:KEY       hash    token bucket (t tokens, u updated), expires when full
  P:typing:ID:ROOM         string  when the last typing notice was passed on (ms); expires after 3 s
  P:dms:ID                 set     the private rooms of a session (deleted when it ends)
  P:events (channel)       pub/sub "E" + JSON array [j, text, j, text, …] of committed events, in
                                   id order; "N" + a typing notice's JSON
]]

local P, H
local SENDS_KEPT = 1000
local LEFT_KEPT = 100
local EARLIER_KEPT = 4
local JOIN_HISTORY = 50
local JOIN_MEMBERS = 100
local TYPING_MAX_MEMBERS = 100
local OUT = {}

local function k(...)
  return P .. ':' .. table.concat({ ... }, ':')
end

local function begin(args)
  P = args[1]
  H = tonumber(args[2])
  OUT = {}
end

local function str(s)
  return cjson.encode(s)
end

--- Publishes the events this call committed, in id order, once at its end.
local function publish()
  if #OUT > 0 then
    redis.call('PUBLISH', k('events'), 'E[' .. table.concat(OUT, ',') .. ']')
  end
end

--- Creates the room's record on its first event; a private one with its pair.
local function ensureRoom(room, a, b)
  if redis.call('HSETNX', k('room', room), 'dropped', 0) == 1 then
    if a then
      redis.call('HSET', k('room', room), 'a', a, 'b', b)
      redis.call('SADD', k('private'), room)
    else
      redis.call('ZADD', k('rooms'), 0, room)
    end
  end
end

--- Appends an event: the next id, retention by H, the text apart. `rest` is the event's JSON
--- after `{"id":N,` without text. Returns the id.
local function append(room, rest, text)
  local id = redis.call('INCR', k('seq'))
  local j = '{"id":' .. id .. ',' .. rest
  local sk = k('events', room)
  local n = redis.call('XLEN', sk)
  if n >= H then
    local old = redis.call('XRANGE', sk, '-', '+', 'COUNT', n - H + 1)
    local dropped
    for _, e in ipairs(old) do
      dropped = string.sub(e[1], 3)
      redis.call('HDEL', k('texts', room), dropped)
      redis.call('HDEL', k('marks', room), dropped)
      redis.call('HDEL', k('editsof', room), dropped)
    end
    redis.call('HSET', k('room', room), 'dropped', dropped)
  end
  redis.call('XADD', sk, 'MAXLEN', H, '0-' .. id, 'j', j)
  if text then redis.call('HSET', k('texts', room), id, text) end
  OUT[#OUT + 1] = j
  OUT[#OUT + 1] = text and str(text) or 'null'
  return id
end

--- The JSON of an event after `{"id":N,`, without text; extra: encoded `,"name":value` parts.
local function body(kind, room, nick, ts, session, extra)
  return '"type":"' .. kind .. '","room":' .. str(room) .. ',"nick":' .. str(nick) ..
    ',"ts":' .. ts .. (extra or '') .. ',"session":"' .. session .. '"}'
end

local function membership(id, room)
  local v = redis.call('HGET', k('memberships', id), room)
  if not v then return nil end
  local j, l = string.match(v, '^(%d+):?(%d*)')
  return tonumber(j), (l ~= '' and tonumber(l) or nil)
end

--- The earlier stretches of a membership value: ';J:L' each, oldest first; '' for none.
local function earlierPart(v)
  return v and string.match(v, '(;.*)$') or ''
end

--- The earlier stretches of a membership joined again after `v` (the last one, if any), and the
--- leave of the newest one forgotten.
local function rejoinedPart(v)
  if not v then return '' end
  local all = earlierPart(v)
  local j, l = string.match(v, '^(%d+):(%d+)')
  if l then all = all .. ';' .. j .. ':' .. l end
  local parts = {}
  local forgot = 0
  for part in string.gmatch(all, ';[^;]+') do
    local f = string.match(part, '^;!(%d+)$')
    if f then forgot = math.max(forgot, tonumber(f)) else parts[#parts + 1] = part end
  end
  local first = math.max(1, #parts - EARLIER_KEPT + 1)
  for i = 1, first - 1 do
    forgot = math.max(forgot, tonumber(string.match(parts[i], ':(%d+)$')))
  end
  local kept = table.concat(parts, '', first)
  if forgot > 0 then kept = kept .. ';!' .. forgot end
  return kept
end

local function isMember(id, room)
  local j, l = membership(id, room)
  return j ~= nil and l == nil
end

--- Events as triples [j, text|false, mark|false] for a list of stream entries.
local function triples(room, entries, into)
  local out = into or {}
  for _, e in ipairs(entries) do
    local id = string.sub(e[1], 3)
    out[#out + 1] = e[2][2]
    out[#out + 1] = redis.call('HGET', k('texts', room), id) or false
    out[#out + 1] = redis.call('HGET', k('marks', room), id) or false
  end
  return out
end

--- Up to `limit` events with id < `before` ('+inf': the latest), oldest first.
local function before(room, beforeId, limit)
  local from = beforeId == '+inf' and '+' or '(0-' .. beforeId
  local entries = redis.call('XREVRANGE', k('events', room), from, '-', 'COUNT', limit)
  local ordered = {}
  for i = #entries, 1, -1 do ordered[#ordered + 1] = entries[i] end
  return triples(room, ordered)
end

local function joinView(room, beforeId)
  return {
    before(room, beforeId, JOIN_HISTORY),
    redis.call('ZRANGE', k('members', room), 0, JOIN_MEMBERS - 1),
    redis.call('ZCARD', k('members', room)),
    redis.call('HGET', k('room', room), 'topic') or false,
  }
end

--- A join event and its membership.
local function joinRoom(id, nick, room, now)
  local previous = redis.call('HGET', k('memberships', id), room)
  local jid = append(room, body('join', room, nick, now, id))
  redis.call('HSET', k('memberships', id), room, jid .. rejoinedPart(previous))
  redis.call('ZADD', k('members', room), 0, nick)
  return jid
end

--- Remembers that a live session can no longer read a room up to `last` (polls before it: gap).
local function noteForgot(id, last)
  local f = redis.call('HMGET', k('session', id), 'token', 'forgot')
  if f[1] and last > tonumber(f[2] or '0') then
    redis.call('HSET', k('session', id), 'forgot', last)
  end
end

--- Forgets the oldest rooms a session left beyond LEFT_KEPT.
local function forgetOldLeaves(id)
  local all = redis.call('HGETALL', k('memberships', id))
  local left = {}
  for i = 1, #all, 2 do
    local l = string.match(all[i + 1], '^%d+:(%d+)')
    if l then left[#left + 1] = { tonumber(l), all[i] } end
  end
  if #left <= LEFT_KEPT then return end
  table.sort(left, function(x, y) return x[1] < y[1] end)
  for i = 1, #left - LEFT_KEPT do redis.call('HDEL', k('memberships', id), left[i][2]) end
  noteForgot(id, left[#left - LEFT_KEPT][1])
end

--- A leave event (with `extra`: by, reason) and the membership marked left.
local function leaveRoom(id, nick, room, now, extra)
  local v = redis.call('HGET', k('memberships', id), room)
  local jid = string.match(v, '^(%d+)')
  local lid = append(room, body('leave', room, nick, now, id, extra))
  redis.call('HSET', k('memberships', id), room, jid .. ':' .. lid .. earlierPart(v))
  redis.call('ZREM', k('members', room), nick)
  forgetOldLeaves(id)
end

--- Deletes a room with its history, members, and what its two sessions remember of it.
local function deleteRoom(room)
  local pair = redis.call('HMGET', k('room', room), 'a', 'b')
  local newest = redis.call('XREVRANGE', k('events', room), '+', '-', 'COUNT', 1)[1]
  local last = newest and tonumber(string.sub(newest[1], 3)) or 0
  for _, sid in ipairs(pair) do
    if sid and redis.call('HDEL', k('memberships', sid), room) == 1 then noteForgot(sid, last) end
  end
  for _, entry in ipairs(redis.call('SMEMBERS', k('dmsends', room))) do
    local sid, cid = string.match(entry, '^([^|]+)|(.*)$')
    redis.call('HDEL', k('sends', sid), cid)
    redis.call('ZREM', k('sendorder', sid), cid)
  end
  for _, sid in ipairs(pair) do
    if sid then redis.call('SREM', k('dms', sid), room) end
  end
  redis.call('DEL', k('events', room), k('texts', room), k('marks', room), k('editsof', room),
    k('members', room), k('room', room), k('dmsends', room))
  redis.call('SREM', k('private'), room)
  redis.call('ZREM', k('rooms'), room)
end

--- Ends a session: a leave in every room it is in (with `extra`), its private rooms deleted, every
--- key of it removed. False when it had already ended.
local function endSession(id, now, extra)
  local s = redis.call('HMGET', k('session', id), 'token', 'nick', 'key', 'address')
  if not s[1] then return false end
  local nick = s[2]
  local all = redis.call('HGETALL', k('memberships', id))
  for i = 1, #all, 2 do
    if not string.match(all[i + 1], '^%d+:') then leaveRoom(id, nick, all[i], now, extra) end
  end
  -- Its private rooms go with it, also those it had left.
  for _, room in ipairs(redis.call('SMEMBERS', k('dms', id))) do deleteRoom(room) end
  redis.call('DEL', k('dms', id))
  if redis.call('GET', k('token', s[1])) == id then redis.call('DEL', k('token', s[1])) end
  if redis.call('GET', k('nick', s[3])) == id then redis.call('DEL', k('nick', s[3])) end
  redis.call('SREM', k('addr', s[4]), id)
  redis.call('DEL', k('session', id), k('memberships', id), k('sends', id), k('sendorder', id))
  redis.call('ZREM', k('presence'), id)
  return true
end

local function live(id)
  return redis.call('EXISTS', k('session', id)) == 1
end

local function isModerator(id)
  return redis.call('HGET', k('session', id), 'moderator') == '1'
end

--- Takes a token from a bucket of `tokens` refilled over `period` ms; 0, or ms to wait.
local function bucket(purpose, key, tokens, period, now)
  if tokens <= 0 then return 0 end
  local bk = k('rate', purpose, key)
  local v = redis.call('HMGET', bk, 't', 'u')
  local t = tonumber(v[1]) or tokens
  local u = tonumber(v[2]) or now
  if now > u then t = math.min(tokens, t + (now - u) * tokens / period) end
  if t >= 1 then
    redis.call('HSET', bk, 't', t - 1, 'u', now)
    redis.call('PEXPIRE', bk, math.ceil(period))
    return 0
  end
  redis.call('HSET', bk, 't', t, 'u', now)
  redis.call('PEXPIRE', bk, math.ceil(period))
  return math.ceil((1 - t) * period / tokens)
end

--- The ban in force matching a nick key or address, as JSON, or nil.
local function banOf(key, address, now)
  local all = redis.call('HVALS', k('bans'))
  for _, json in ipairs(all) do
    local ban = cjson.decode(json)
    if ban['until'] > now and ((ban.key and ban.key == key) or (ban.address and ban.address == address)) then
      return json
    end
  end
  return nil
end

--- A kept message of a room: its decoded JSON, its mark; or nil.
local function message(room, ref)
  local e = redis.call('XRANGE', k('events', room), '0-' .. ref, '0-' .. ref)
  if #e == 0 then return nil end
  local ev = cjson.decode(e[1][2][2])
  if ev.type ~= 'message' then return nil end
  return ev, redis.call('HGET', k('marks', room), ref)
end

--- Rewrites a remembered send of message `ev` with `change(decoded)`.
local function rewriteSend(ev, change)
  if ev.clientId == nil then return end
  local json = redis.call('HGET', k('sends', ev.session), ev.clientId)
  if not json then return end
  local send = cjson.decode(json)
  if send.id ~= ev.id then return end
  change(send)
  redis.call('HSET', k('sends', ev.session), ev.clientId, cjson.encode(send))
end

local function sessionView(id)
  return { redis.call('HGETALL', k('session', id)), redis.call('HGETALL', k('memberships', id)) }
end

-- Operations: each takes P, H, then its own arguments; answers {"ok", …} or {"refused", code, …}.

local function refused(code, detail)
  return { 'refused', code, detail or false }
end

redis.register_function('parley_create_session', function(_, a)
  begin(a)
  local id, token, nick, key, address, moderator, now = a[3], a[4], a[5], a[6], a[7], a[8], tonumber(a[9])
  local ban = banOf(key, address, now)
  if ban then return refused('banned', ban) end
  if not redis.call('SET', k('nick', key), id, 'NX') then return refused('nick_taken') end
  redis.call('HSET', k('session', id), 'token', token, 'nick', nick, 'key', key,
    'createdAt', now, 'address', address, 'moderator', moderator)
  redis.call('SET', k('token', token), id)
  redis.call('SADD', k('addr', address), id)
  redis.call('ZADD', k('presence'), now, id)
  return { 'ok' }
end)

redis.register_function('parley_authenticate', function(_, a)
  begin(a)
  local id = redis.call('GET', k('token', a[3]))
  if not id then return { 'none' } end
  redis.call('ZADD', k('presence'), 'GT', a[4], id)
  return { 'ok', id, sessionView(id) }
end)

redis.register_function('parley_refresh', function(_, a)
  begin(a)
  if not live(a[3]) then return { 'none' } end
  return { 'ok', a[3], sessionView(a[3]) }
end)

redis.register_function('parley_touch', function(_, a)
  begin(a)
  for i = 3, #a, 2 do redis.call('ZADD', k('presence'), 'XX', 'GT', a[i + 1], a[i]) end
  return { 'ok' }
end)

redis.register_function('parley_end_session', function(_, a)
  begin(a)
  if not endSession(a[3], a[4]) then return refused('unauthorized') end
  publish()
  return { 'ok' }
end)

redis.register_function('parley_expire', function(_, a)
  begin(a)
  local now, grace = tonumber(a[3]), tonumber(a[4])
  -- Absent for the whole grace: last seen at or before now - grace, as the local stores count it.
  local ids = redis.call('ZRANGEBYSCORE', k('presence'), '-inf', now - grace)
  for _, id in ipairs(ids) do
    if not endSession(id, now) then redis.call('ZREM', k('presence'), id) end
  end
  local bans = redis.call('HGETALL', k('bans'))
  for i = 1, #bans, 2 do
    if cjson.decode(bans[i + 1])['until'] <= now then redis.call('HDEL', k('bans'), bans[i]) end
  end
  publish()
  return { 'ok', #ids }
end)

redis.register_function('parley_join', function(_, a)
  begin(a)
  local id, room, now = a[3], a[4], a[5]
  if not live(id) then return refused('unauthorized') end
  if string.sub(room, 1, 1) == '@' then
    local pair = redis.call('HMGET', k('room', room), 'a', 'b')
    if pair[1] ~= id and pair[2] ~= id then return refused('private_room') end
  end
  if isMember(id, room) then return { 'ok', joinView(room, '+inf') } end
  ensureRoom(room)
  local nick = redis.call('HGET', k('session', id), 'nick')
  local jid = joinRoom(id, nick, room, now)
  publish()
  return { 'ok', joinView(room, jid) }
end)

redis.register_function('parley_leave', function(_, a)
  begin(a)
  local id, room, now = a[3], a[4], a[5]
  if not live(id) then return refused('unauthorized') end
  if not isMember(id, room) then return refused('not_member') end
  leaveRoom(id, redis.call('HGET', k('session', id), 'nick'), room, now)
  publish()
  return { 'ok' }
end)

redis.register_function('parley_members', function(_, a)
  begin(a)
  local id, room, after, limit = a[3], a[4], a[5], tonumber(a[6])
  if not live(id) then return refused('unauthorized') end
  if not isMember(id, room) then return refused('not_member') end
  local from = after == '' and '-' or '(' .. after
  return { 'ok', redis.call('ZRANGEBYLEX', k('members', room), from, '+', 'LIMIT', 0, limit + 1) }
end)

redis.register_function('parley_rooms', function(_, a)
  begin(a)
  local out = {}
  for _, room in ipairs(redis.call('ZRANGE', k('rooms'), 0, -1)) do
    out[#out + 1] = room
    out[#out + 1] = redis.call('ZCARD', k('members', room))
  end
  return { 'ok', out }
end)

redis.register_function('parley_history', function(_, a)
  begin(a)
  local id, room, beforeId, limit = a[3], a[4], a[5], tonumber(a[6])
  if not live(id) then return refused('unauthorized') end
  if not isMember(id, room) then return refused('not_member') end
  return { 'ok', before(room, beforeId, limit) }
end)

redis.register_function('parley_read', function(_, a)
  begin(a)
  local limit = tonumber(a[3])
  local out, gap = {}, 0
  for i = 4, #a, 3 do
    local room, from, to = a[i], a[i + 1], a[i + 2]
    local dropped = tonumber(redis.call('HGET', k('room', room), 'dropped') or '0')
    if dropped > tonumber(from) then gap = 1 end
    local last = to == 'inf' and '+' or '0-' .. to
    triples(room, redis.call('XRANGE', k('events', room), '(0-' .. from, last, 'COUNT', limit), out)
  end
  return { 'ok', out, gap }
end)

redis.register_function('parley_send', function(_, a)
  begin(a)
  local id, room, text, cid, now = a[3], a[4], a[5], a[6], a[7]
  local tokens, period = tonumber(a[8]), tonumber(a[9])
  if not live(id) then return refused('unauthorized') end
  if not isMember(id, room) then return refused('not_member') end
  if cid ~= '' then
    local earlier = redis.call('HGET', k('sends', id), cid)
    if earlier then return { 'ok', earlier, 0 } end
  end
  local wait = bucket('send', id, tokens, period, tonumber(now))
  if wait > 0 then return refused('rate_limited', wait) end
  local nick = redis.call('HGET', k('session', id), 'nick')
  local extra = cid ~= '' and (',"clientId":' .. str(cid)) or ''
  local rest = body('message', room, nick, now, id, extra)
  local mid = append(room, rest, text)
  local full = '{"id":' .. mid .. ',"text":' .. str(text) .. ',' .. rest
  if cid ~= '' then
    redis.call('HSET', k('sends', id), cid, full)
    redis.call('ZADD', k('sendorder', id), mid, cid)
    local n = redis.call('ZCARD', k('sendorder', id))
    if n > SENDS_KEPT then
      for _, old in ipairs(redis.call('ZRANGE', k('sendorder', id), 0, n - SENDS_KEPT - 1)) do
        redis.call('HDEL', k('sends', id), old)
      end
      redis.call('ZREMRANGEBYRANK', k('sendorder', id), 0, n - SENDS_KEPT - 1)
    end
    if redis.call('HEXISTS', k('room', room), 'a') == 1 then
      redis.call('SADD', k('dmsends', room), id .. '|' .. cid)
    end
  end
  publish()
  return { 'ok', full, 1 }
end)

redis.register_function('parley_edit', function(_, a)
  begin(a)
  local id, room, ref, text, now, window = a[3], a[4], a[5], a[6], tonumber(a[7]), tonumber(a[8])
  if not live(id) then return refused('unauthorized') end
  -- No membership check: an author keeps their messages after leaving the room (DESIGN.md).
  local ev, mark = message(room, ref)
  if not ev or mark == 'deleted' then return refused('not_found') end
  if ev.session ~= id then return refused('not_author') end
  if window <= 0 or now - ev.ts > window then return refused('edit_window_passed') end
  local nick = redis.call('HGET', k('session', id), 'nick')
  local rest = body('edit', room, nick, now, id, ',"ref":' .. ref)
  local eid = append(room, rest, text)
  redis.call('HSET', k('texts', room), ref, text)
  redis.call('HSET', k('marks', room), ref, 'edited')
  local edits = redis.call('HGET', k('editsof', room), ref)
  redis.call('HSET', k('editsof', room), ref, edits and (edits .. ',' .. eid) or tostring(eid))
  rewriteSend(ev, function(send)
    send.text = text
    send.edited = true
  end)
  publish()
  return { 'ok', '{"id":' .. eid .. ',"text":' .. str(text) .. ',' .. rest }
end)

redis.register_function('parley_remove', function(_, a)
  begin(a)
  local id, room, ref, now = a[3], a[4], a[5], a[6]
  if not live(id) then return refused('unauthorized') end
  local moderator = isModerator(id)
  local ev, mark = message(room, ref)
  if not ev or mark == 'deleted' then return refused('not_found') end
  local own = ev.session == id
  if not own and not moderator then return refused('not_author') end
  local extra = ',"ref":' .. ref
  if not own then extra = extra .. ',"by":' .. str(redis.call('HGET', k('session', id), 'nick')) end
  append(room, body('delete', room, ev.nick, now, id, extra))
  redis.call('HDEL', k('texts', room), ref)
  redis.call('HSET', k('marks', room), ref, 'deleted')
  local edits = redis.call('HGET', k('editsof', room), ref)
  if edits then
    for eid in string.gmatch(edits, '%d+') do redis.call('HDEL', k('texts', room), eid) end
    redis.call('HDEL', k('editsof', room), ref)
  end
  rewriteSend(ev, function(send)
    send.text = nil
    send.edited = nil
    send.deleted = true
  end)
  publish()
  return { 'ok' }
end)

redis.register_function('parley_topic', function(_, a)
  begin(a)
  local id, room, topic, now = a[3], a[4], a[5], a[6]
  if not live(id) then return refused('unauthorized') end
  if not isModerator(id) then return refused('forbidden') end
  if string.sub(room, 1, 1) == '@' then return refused('private_room') end
  ensureRoom(room)
  local nick = redis.call('HGET', k('session', id), 'nick')
  local rest = body('topic', room, nick, now, id)
  local tid = append(room, rest, topic)
  if topic == '' then
    redis.call('HDEL', k('room', room), 'topic')
  else
    redis.call('HSET', k('room', room), 'topic', topic)
  end
  publish()
  return { 'ok', '{"id":' .. tid .. ',"text":' .. str(topic) .. ',' .. rest }
end)

redis.register_function('parley_kick', function(_, a)
  begin(a)
  local id, room, key, reason, now = a[3], a[4], a[5], a[6], a[7]
  if not live(id) then return refused('unauthorized') end
  if not isModerator(id) then return refused('forbidden') end
  local target = redis.call('GET', k('nick', key))
  if not target or not isMember(target, room) then return refused('not_member') end
  local extra = ',"by":' .. str(redis.call('HGET', k('session', id), 'nick'))
  if reason ~= '' then extra = extra .. ',"reason":' .. str(reason) end
  leaveRoom(target, redis.call('HGET', k('session', target), 'nick'), room, now, extra)
  publish()
  return { 'ok' }
end)

redis.register_function('parley_ban', function(_, a)
  begin(a)
  local id, banId, json, key, address, reason, now = a[3], a[4], a[5], a[6], a[7], a[8], a[9]
  if not live(id) then return refused('unauthorized') end
  if not isModerator(id) then return refused('forbidden') end
  redis.call('HSET', k('bans'), banId, json)
  local extra = ',"by":' .. str(redis.call('HGET', k('session', id), 'nick'))
  if reason ~= '' then extra = extra .. ',"reason":' .. str(reason) end
  local targets = {}
  if key ~= '' then
    local t = redis.call('GET', k('nick', key))
    if t then targets[t] = true end
  end
  if address ~= '' then
    for _, t in ipairs(redis.call('SMEMBERS', k('addr', address))) do targets[t] = true end
  end
  local ordered = {}
  for t in pairs(targets) do ordered[#ordered + 1] = t end
  table.sort(ordered)
  for _, t in ipairs(ordered) do endSession(t, now, extra) end
  publish()
  return { 'ok' }
end)

redis.register_function('parley_bans', function(_, a)
  begin(a)
  return { 'ok', redis.call('HVALS', k('bans')) }
end)

redis.register_function('parley_unban', function(_, a)
  begin(a)
  local id, banId = a[3], a[4]
  if not live(id) then return refused('unauthorized') end
  if not isModerator(id) then return refused('forbidden') end
  if redis.call('HDEL', k('bans'), banId) == 0 then return refused('not_found') end
  return { 'ok' }
end)

redis.register_function('parley_direct', function(_, a)
  begin(a)
  local id, key, now = a[3], a[4], a[5]
  if not live(id) then return refused('unauthorized') end
  local other = redis.call('GET', k('nick', key))
  if not other then return refused('no_such_nick') end
  if other == id then return refused('own_nick') end
  local x, y = id, other
  if y < x then x, y = y, x end
  local room = '@' .. string.sub(redis.sha1hex(x .. '\n' .. y), 1, 16)
  ensureRoom(room, x, y)
  redis.call('SADD', k('dms', x), room)
  redis.call('SADD', k('dms', y), room)
  -- The other session joins first, so the opener's join (after its own) tells it who wrote.
  for _, sid in ipairs({ other, id }) do
    if not isMember(sid, room) then
      joinRoom(sid, redis.call('HGET', k('session', sid), 'nick'), room, now)
    end
  end
  publish()
  return { 'ok', room, redis.call('HGET', k('session', other), 'nick'), before(room, '+inf', JOIN_HISTORY) }
end)

redis.register_function('parley_typing', function(_, a)
  begin(a)
  local id, room, now = a[3], a[4], a[5]
  if not live(id) then return refused('unauthorized') end
  if not isMember(id, room) then return refused('not_member') end
  if redis.call('ZCARD', k('members', room)) > TYPING_MAX_MEMBERS then return { 'ok' } end
  -- Throttled by the caller's clock (as every time here), not by the key's expiry.
  local last = tonumber(redis.call('GET', k('typing', id, room)) or '')
  if last and tonumber(now) - last < 3000 then return { 'ok' } end
  redis.call('SET', k('typing', id, room), now, 'PX', 3000)
  local nick = redis.call('HGET', k('session', id), 'nick')
  redis.call('PUBLISH', k('events'), 'N{"type":"typing","room":' .. str(room) .. ',"nick":' .. str(nick) ..
    ',"ts":' .. now .. ',"session":"' .. id .. '"}')
  return { 'ok' }
end)

redis.register_function('parley_rate', function(_, a)
  begin(a)
  return { 'ok', bucket(a[3], a[4], tonumber(a[5]), tonumber(a[6]), tonumber(a[7])) }
end)

redis.register_function('parley_counts', function(_, a)
  begin(a)
  return { 'ok', redis.call('ZCARD', k('presence')), redis.call('ZCARD', k('rooms')) }
end)
