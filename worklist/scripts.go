package worklist

import "github.com/redis/go-redis/v9"

// The Lua scripts below make every move atomic: each checks the item's state
// and updates its hash, the queue, claims and done sets and the event stream
// in one call. They run through Script.Run (EVALSHA, falling back to EVAL
// once when the server does not have the script yet).
//
// The mutation scripts share one calling convention:
//
//	KEYS[1] item hash   KEYS[2] queue zset   KEYS[3] claims zset
//	KEYS[4] done zset   KEYS[5] events stream
//	ARGV[1] now (Unix ms)   ARGV[2] acting user   ARGV[3] stream MAXLEN (~)
//	ARGV[4..6] deadlines of critical, urgent, routine (ms)
//	ARGV[7] "1" to append no event (rebuild), else ""
//	ARGV[8...] per script
//
// and reply {"OK", eventID, HGETALL} or {"NOTFOUND"}, {"COMPLETED"},
// {"NOTCLAIMED"}, {"CONFLICT", holder, leaseUntilMs}.
//
// Item hash fields: uid pid pname acc mod body desc prio (order priority)
// recv (ms) ptier (tier of the order priority) ftier f_code f_name f_prob
// f_vol f_model (top finding)
// o_tier o_due o_reason o_by o_at (override) tier due (effective, ms)
// st (open|claimed|done) holder lease (ms) ub ua (updated by/at, ms) done (ms)
// ai (pending|done|failed; missing in items written before it existed, read
// as pending) ai_err (reason of a failure).
//
// No key has a TTL (the embedded store does not expire keys in real time):
// leases and retention are scores swept by expireScript with the client's time.
const prelude = `
local now = tonumber(ARGV[1])
local by = ARGV[2]
local RANK = {critical = 0, urgent = 1, routine = 2}
local function ms(x) return string.format('%d', x) end
local function present(v) return v and v ~= '' end
local function deadline(t)
  if t == 'critical' then return tonumber(ARGV[4]) end
  if t == 'urgent' then return tonumber(ARGV[5]) end
  return tonumber(ARGV[6])
end
-- place recomputes the effective tier and due time from the hash and
-- (re)scores the item in the queue.
local function place(key, uid)
  local v = redis.call('HMGET', key, 'recv', 'ptier', 'ftier', 'o_tier', 'o_due')
  local tier = v[2]
  if not present(tier) then tier = 'routine' end
  if present(v[3]) and RANK[v[3]] and RANK[v[3]] < RANK[tier] then tier = v[3] end
  if present(v[4]) then tier = v[4] end
  local due = tonumber(v[1]) + deadline(tier)
  if present(v[5]) then due = tonumber(v[5]) end
  redis.call('HSET', key, 'tier', tier, 'due', ms(due))
  redis.call('ZADD', KEYS[2], ms(due), uid)
end
local function touch(key)
  redis.call('HSET', key, 'ub', by, 'ua', ARGV[1])
end
-- emit appends an event carrying the item's hash h (HGETALL of key).
local function emit(typ, key, h)
  if ARGV[7] == '1' then return '' end
  h = h or redis.call('HGETALL', key)
  local args = {'XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], '*', 'ev', typ, 'evby', by, 'evat', ARGV[1]}
  for i = 1, #h do args[#args + 1] = h[i] end
  return redis.call(unpack(args))
end
local function ok(typ, key)
  local h = redis.call('HGETALL', key)
  return {'OK', emit(typ, key, h), h}
end
`

// upsertScript adds a study (AI pending) or updates its header fields,
// keeping its AI status; a done study is refused, an unchanged one appends
// no event. The first received time wins.
// ARGV[8..17]: uid pid pname acc mod body desc prio recv ptier.
var upsertScript = redis.NewScript(prelude + `
local key = KEYS[1]
local uid = ARGV[8]
local fields = {'pid', ARGV[9], 'pname', ARGV[10], 'acc', ARGV[11], 'mod', ARGV[12],
  'body', ARGV[13], 'desc', ARGV[14], 'prio', ARGV[15], 'ptier', ARGV[17]}
local h = redis.call('HGETALL', key)
if #h == 0 then
  -- New: no findings or override yet, so the tier is the order's.
  local due = ms(tonumber(ARGV[16]) + deadline(ARGV[17]))
  h = fields
  for _, v in ipairs({'uid', uid, 'st', 'open', 'ai', 'pending', 'recv', ARGV[16], 'tier', ARGV[17], 'due', due, 'ub', by, 'ua', ARGV[1]}) do
    h[#h + 1] = v
  end
  redis.call('HSET', key, unpack(h))
  redis.call('ZADD', KEYS[2], due, uid)
  return {'OK', emit('added', key, h), h}
end
local cur = {}
for i = 1, #h, 2 do cur[h[i]] = h[i + 1] end
if cur.st == 'done' then return {'COMPLETED'} end
local changed = false
for i = 1, #fields, 2 do
  if cur[fields[i]] ~= fields[i + 1] then changed = true end
end
if not changed then return {'OK', '', h} end
redis.call('HSET', key, unpack(fields))
touch(key)
place(key, uid)
return ok('updated', key)
`)

// findingsScript sets the top finding and its tier, marks AI done and
// reprioritises; only open or claimed items. ARGV[8..14]: uid ftier f_code f_name f_prob f_vol
// f_model (all "" for no finding).
var findingsScript = redis.NewScript(prelude + `
local key = KEYS[1]
local st = redis.call('HGET', key, 'st')
if not st then return {'NOTFOUND'} end
if st == 'done' then return {'COMPLETED'} end
redis.call('HSET', key, 'ftier', ARGV[9], 'f_code', ARGV[10], 'f_name', ARGV[11], 'f_prob', ARGV[12],
  'f_vol', ARGV[13], 'f_model', ARGV[14], 'ai', 'done')
redis.call('HDEL', key, 'ai_err')
touch(key)
place(key, ARGV[8])
return ok('reprioritised', key)
`)

// aiScript sets the AI status and the reason of a failure ("" clears it),
// without moving the item; only open or claimed items. It appends an "ai"
// event even when nothing changed. ARGV[8..10]: uid ai ai_err.
var aiScript = redis.NewScript(prelude + `
local key = KEYS[1]
local st = redis.call('HGET', key, 'st')
if not st then return {'NOTFOUND'} end
if st == 'done' then return {'COMPLETED'} end
redis.call('HSET', key, 'ai', ARGV[9])
if ARGV[10] == '' then
  redis.call('HDEL', key, 'ai_err')
else
  redis.call('HSET', key, 'ai_err', ARGV[10])
end
touch(key)
return ok('ai', key)
`)

// claimScript claims exclusively, or renews the holder's lease, or takes over
// a lapsed lease. ARGV[8..9]: uid leaseMs.
var claimScript = redis.NewScript(prelude + `
local key = KEYS[1]
local v = redis.call('HMGET', key, 'st', 'holder', 'lease')
if not v[1] then return {'NOTFOUND'} end
if v[1] == 'done' then return {'COMPLETED'} end
if v[1] == 'claimed' and v[2] ~= by and tonumber(v[3]) > now then
  return {'CONFLICT', v[2], v[3]}
end
local untl = ms(now + tonumber(ARGV[9]))
redis.call('HSET', key, 'st', 'claimed', 'holder', by, 'lease', untl)
redis.call('ZADD', KEYS[3], untl, ARGV[8])
touch(key)
return ok('claimed', key)
`)

// releaseScript gives a claimed study back to the queue; only its holder (or
// anyone once the lease has lapsed). ARGV[8]: uid.
var releaseScript = redis.NewScript(prelude + `
local key = KEYS[1]
local v = redis.call('HMGET', key, 'st', 'holder', 'lease')
if not v[1] then return {'NOTFOUND'} end
if v[1] == 'done' then return {'COMPLETED'} end
if v[1] ~= 'claimed' then return {'NOTCLAIMED'} end
if v[2] ~= by and tonumber(v[3]) > now then return {'CONFLICT', v[2], v[3]} end
redis.call('HSET', key, 'st', 'open', 'holder', '', 'lease', '')
redis.call('ZREM', KEYS[3], ARGV[8])
touch(key)
return ok('released', key)
`)

// completeScript moves a study to the done set, scored by completion time;
// refused while someone else holds a live lease. ARGV[8]: uid.
var completeScript = redis.NewScript(prelude + `
local key = KEYS[1]
local v = redis.call('HMGET', key, 'st', 'holder', 'lease')
if not v[1] then return {'NOTFOUND'} end
if v[1] == 'done' then return {'COMPLETED'} end
if v[1] == 'claimed' and v[2] ~= by and tonumber(v[3]) > now then
  return {'CONFLICT', v[2], v[3]}
end
redis.call('HSET', key, 'st', 'done', 'holder', '', 'lease', '', 'done', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[8])
redis.call('ZREM', KEYS[3], ARGV[8])
redis.call('ZADD', KEYS[4], ARGV[1], ARGV[8])
touch(key)
return ok('completed', key)
`)

// overrideScript sets a manual priority. ARGV[8..12]: uid o_tier o_due
// o_reason o_at (o_by is the acting user).
var overrideScript = redis.NewScript(prelude + `
local key = KEYS[1]
local st = redis.call('HGET', key, 'st')
if not st then return {'NOTFOUND'} end
if st == 'done' then return {'COMPLETED'} end
redis.call('HSET', key, 'o_tier', ARGV[9], 'o_due', ARGV[10], 'o_reason', ARGV[11], 'o_by', by, 'o_at', ARGV[12])
touch(key)
place(key, ARGV[8])
return ok('overridden', key)
`)

// clearOverrideScript removes a manual priority; without one it changes
// nothing and appends no event. ARGV[8]: uid.
var clearOverrideScript = redis.NewScript(prelude + `
local key = KEYS[1]
local v = redis.call('HMGET', key, 'st', 'o_tier', 'o_due')
if not v[1] then return {'NOTFOUND'} end
if v[1] == 'done' then return {'COMPLETED'} end
if not present(v[2]) and not present(v[3]) then
  return {'OK', '', redis.call('HGETALL', key)}
end
redis.call('HDEL', key, 'o_tier', 'o_due', 'o_reason', 'o_by', 'o_at')
touch(key)
place(key, ARGV[8])
return ok('override-cleared', key)
`)

// expireScript returns lapsed claims to open (one "expired" event each) and
// deletes done items older than the retention. KEYS[1] is the item key
// prefix (items are addressed as KEYS[1]..uid). ARGV[8..9]: retentionMs
// batch. Reply {expired, trimmed}; a reply equal to batch means call again.
var expireScript = redis.NewScript(prelude + `
local batch = tonumber(ARGV[9])
local n = 0
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, batch)
for _, uid in ipairs(ids) do
  local key = KEYS[1] .. uid
  redis.call('ZREM', KEYS[3], uid)
  local v = redis.call('HMGET', key, 'st', 'lease')
  if v[1] == 'claimed' and tonumber(v[2]) <= now then
    redis.call('HSET', key, 'st', 'open', 'holder', '', 'lease', '')
    touch(key)
    emit('expired', key)
    n = n + 1
  end
end
local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ms(now - tonumber(ARGV[8])), 'LIMIT', 0, batch)
for _, uid in ipairs(old) do
  redis.call('DEL', KEYS[1] .. uid)
  redis.call('ZREM', KEYS[4], uid)
end
return {#ids, #old, n}
`)

// clearScript deletes every item of this prefix and the three sets (not the
// event stream). KEYS[1] item key prefix, KEYS[2..4] queue claims done.
var clearScript = redis.NewScript(`
local n = 0
for k = 2, 4 do
  local ids = redis.call('ZRANGE', KEYS[k], 0, -1)
  for _, uid in ipairs(ids) do
    n = n + redis.call('DEL', KEYS[1] .. uid)
  end
  redis.call('DEL', KEYS[k])
end
return n
`)

// listScript pages through a sorted set (queue or done) in score order, ties
// by member bytewise (as ZSET orders them), after a cursor (score, member),
// applying filters. It looks at no more than ARGV[8] members per call.
// KEYS[1] item key prefix, KEYS[2] the set.
// ARGV[1] cursor score ("" = top)  ARGV[2] cursor member  ARGV[3] limit
// ARGV[4] modality  ARGV[5] body part  ARGV[6] tier  ARGV[7] status  ARGV[8] scan budget
// Reply {nextScore, nextMember, {member, ...}}; nextScore "" at the end. The
// caller then reads the members' hashes in one pipeline: returning HGETALLs
// from Lua costs the server several times more than native HGETALLs.
var listScript = redis.NewScript(`
local limit = tonumber(ARGV[3])
local budget = tonumber(ARGV[8])
local filtered = ARGV[4] ~= '' or ARGV[5] ~= '' or ARGV[6] ~= '' or ARGV[7] ~= ''
local function after(a, b)
  local la, lb = #a, #b
  local n = la
  if lb < n then n = lb end
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return la > lb
end
local min, skipScore, skipMember = '-inf', nil, nil
if ARGV[1] ~= '' then
  min = ARGV[1]
  skipScore = tonumber(ARGV[1])
  skipMember = ARGV[2]
end
local out = {}
local offset, scanned = 0, 0
local chunk = limit + 1
if filtered or chunk < 64 then chunk = 64 end
-- Once the page is full, keep looking for one more match: there is a next
-- page only if one exists (or if the scan budget ran out first).
local fullS, fullM = nil, nil
while true do
  local r = redis.call('ZRANGEBYSCORE', KEYS[2], min, '+inf', 'WITHSCORES', 'LIMIT', offset, chunk)
  local got = #r / 2
  offset = offset + got
  for i = 1, #r, 2 do
    local m, s = r[i], r[i + 1]
    if not (skipScore and tonumber(s) == skipScore and not after(m, skipMember)) then
      scanned = scanned + 1
      local key = KEYS[1] .. m
      local keep = true
      if filtered then
        local v = redis.call('HMGET', key, 'mod', 'body', 'tier', 'st')
        if (ARGV[4] ~= '' and v[1] ~= ARGV[4]) or (ARGV[5] ~= '' and v[2] ~= ARGV[5])
          or (ARGV[6] ~= '' and v[3] ~= ARGV[6]) or (ARGV[7] ~= '' and v[4] ~= ARGV[7]) then
          keep = false
        end
      end
      if keep then
        if fullS then return {fullS, fullM, out} end
        out[#out + 1] = m
        if #out >= limit then fullS, fullM = s, m end
      end
      if scanned >= budget then
        if fullS then return {fullS, fullM, out} end
        return {s, m, out}
      end
    end
  end
  if got < chunk then return {'', '', out} end
end
`)
