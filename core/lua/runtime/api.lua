-- runtime/api.lua - the `parley` table scripts see: namespaces, rooms,
-- timers, kv, the store, shared.
-- A part of the runtime (the Lua half of parley's seam, embedded in the
-- binary; core/lua/script.c runs the parts in order): each gets the C host
-- API `core` and the context `C` the parts share, and adds to it what later
-- parts use.
local core, C = ...
local json, json_null, sockets, timers = C.json, C.json_null, C.sockets, C.timers
local log, module_tag, wait_for, binary = C.log, C.module_tag, C.wait_for, C.binary
local settle = C.settle
local call, script_failed = C.call, C.script_failed
local is_binary, broadcast_new = C.is_binary, C.broadcast_new

-- ---- the API scripts see ----

-- Its arguments: a call made as an argument of pass is not a tail call,
-- so an error raised under it points at the script's line.
local function pass(...)
	return ...
end

local parley = {}

parley.null = json_null
parley.binary = binary
parley.is_binary = is_binary
-- Whether v is, or holds (in tables nested up to 32 deep), a binary value:
-- what JSON cannot carry.
function parley.has_binary(v)
	return core.binary.has_binary(v, 0)
end
-- encode(v) -> text (raises on values with no JSON form); decode(text) ->
-- value | nil, err. Decoded arrays are marked (json.is_array), so an empty
-- one stays []; json.array(t) marks a table of a script's own.
parley.json = {
	encode = json.encode,
	decode = json.decode,
	array = json.array,
	is_array = json.is_array,
	number = json.number,
	raw = json.raw,
	is_raw = json.is_raw,
	raw_text = json.raw_text,
	null = json_null,
}

-- Hashes, MACs and encodings, for tokens and signatures. Byte strings in,
-- byte strings out; decoders return nil, err on bad input.
parley.crypto = {
	hmac_sha256 = core.hmac_sha256,
	sha256 = core.sha256,
	equals = core.secure_equals,
	random = core.random,
	base64_encode = core.base64,
	base64_decode = core.base64_decode,
	base64url_encode = core.base64url_encode,
	base64url_decode = core.base64url_decode,
}

-- The server's settings a script may read: jwt_secret (when JWT mode is
-- on), ping_interval, ping_timeout, max_payload, max_user_sockets, max_args.
-- Read-only, like all of `parley` as a module sees it (sandbox_env).
parley.settings = core.settings

function parley.namespace()
	return C.default_nsp
end

-- The namespaces the modules in force serve, sorted: a room of the same
-- name may exist in each.
function parley.namespaces()
	local list = {}
	for nsp in pairs(C.reg.namespaces) do
		list[#list + 1] = nsp
	end
	table.sort(list)
	return list
end

-- A broadcast to a room of the default namespace (parley.of for another).
function parley.to(room)
	return broadcast_new(C.default_nsp):to(room)
end

-- parley.of(nsp):to(room) / :emit(event, ...). A new object each call,
-- as cheap as a broadcast: a cached one would be shared by every module,
-- and one could change it for the others.
local Namespace = { __metatable = false }
Namespace.__index = Namespace

function Namespace:to(room)
	return broadcast_new(self.name):to(room)
end

function Namespace:emit(event, ...)
	return broadcast_new(self.name):emit(event, ...)
end

function parley.of(nsp)
	return setmetatable({ name = nsp }, Namespace)
end

-- Every socket of the default namespace.
function parley.everyone()
	return broadcast_new(C.default_nsp)
end

function parley.socket(id)
	return sockets[id]
end

-- The ids of the sockets in a room.
function parley.room_sockets(room, nsp)
	return core.room_sockets(nsp or C.default_nsp, room)
end

-- Presence over every node (cluster mode) or this node's (one node, and
-- the parley.local_* variants). In cluster mode each cluster-wide call asks
-- Redis and the job waits for the answer (docs/cluster.md says the cost);
-- Redis unreachable, the answer is this node's. On one node the calls
-- answer at once, as they always did.
local CLUSTER = core.presence_cluster == true
-- true in cluster mode: user:online / user:offline are decided by the
-- cluster and told through the presence hook (docs/lua.md).
parley.cluster_presence = CLUSTER

-- The local answer when Redis gave none (false).
local function or_local(answer, fn, nsp, arg)
	if answer == false then
		return fn(nsp, arg)
	end
	return answer
end

-- The users whose sockets are in a room, each once (an array).
function parley.local_room_users(room, nsp)
	return core.room_users(nsp or C.default_nsp, room)
end

function parley.local_room_size(room, nsp)
	return core.room_size(nsp or C.default_nsp, room)
end

-- Each room's sockets here, in the rooms' order.
function parley.local_room_sizes(rooms, nsp)
	nsp = nsp or C.default_nsp
	local sizes = {}
	for i, room in ipairs(rooms) do
		sizes[i] = core.room_size(nsp, room)
	end
	return sizes
end

-- How many sockets a user has connected in the namespace.
function parley.local_user_sockets(user_id, nsp)
	return core.room_size(nsp or C.default_nsp, "user:" .. user_id)
end

-- The users with a socket connected to the namespace (an array).
function parley.local_online_users(nsp)
	return core.online_users(nsp or C.default_nsp)
end

if CLUSTER then
	function parley.room_users(room, nsp)
		nsp = nsp or C.default_nsp
		return or_local(settle("parley.room_users", "read",
			core.presence_room_users(nsp, room)), core.room_users, nsp, room)
	end

	function parley.room_size(room, nsp)
		nsp = nsp or C.default_nsp
		return or_local(settle("parley.room_size", "read",
			core.presence_room_size(nsp, room)), core.room_size, nsp, room)
	end

	-- One Redis function call per 1,000 rooms (host_presence.c's bound).
	function parley.room_sizes(rooms, nsp)
		nsp = nsp or C.default_nsp
		local sizes = {}
		for first = 1, #rooms, 1000 do
			local part = { unpack(rooms, first, math.min(first + 999, #rooms)) }
			local got = settle("parley.room_sizes", "read",
				core.presence_room_sizes(nsp, part))
			if not got then
				return parley.local_room_sizes(rooms, nsp)
			end
			for i = 1, #part do
				sizes[first + i - 1] = got[i]
			end
		end
		return sizes
	end

	function parley.user_sockets(user_id, nsp)
		nsp = nsp or C.default_nsp
		local room = "user:" .. user_id
		return or_local(settle("parley.user_sockets", "read",
			core.presence_room_size(nsp, room)), core.room_size, nsp, room)
	end

	function parley.online_users(nsp)
		nsp = nsp or C.default_nsp
		return or_local(settle("parley.online_users", "read",
			core.presence_online_users(nsp)), core.online_users, nsp)
	end

	-- The users whose grace this node owns and has ended: those the cluster
	-- confirms offline (each to one node), an array; {} when Redis is
	-- unreachable (ask again later).
	function parley.presence_expire(users, nsp)
		local confirmed = settle("parley.presence_expire", "read",
			core.presence_expire(nsp or C.default_nsp, users))
		return confirmed or {}
	end
else
	parley.room_users = parley.local_room_users
	parley.room_size = parley.local_room_size
	parley.room_sizes = parley.local_room_sizes
	parley.user_sockets = parley.local_user_sockets
	parley.online_users = parley.local_online_users
end

function parley.now()
	return core.now()
end

-- Runs fn after ms milliseconds (every ms milliseconds with every = true);
-- returns a handle for parley.cancel. Timers belong to the module that set
-- them.
-- So that no timer keeps the loop spinning, a timer waits at least
-- TIMER_MIN_MS (a 0 ms timer that sets itself again runs once a
-- millisecond, not at every turn of the loop), and a repeating one runs at
-- most every TIMER_MIN_EVERY_MS.
local TIMER_MIN_MS = 1
local TIMER_MIN_EVERY_MS = 10

-- The timers each running timer callback has set, by its job's coroutine:
-- should the guard stop the callback, they are cancelled with it.
local armed_by = {}
local next_timer = 0

function parley.timer(ms, fn, every)
	if type(ms) ~= "number" or ms ~= ms or ms < 0 or type(fn) ~= "function" then
		return nil, "usage: parley.timer(ms, fn[, every])"
	end
	ms = math.max(ms, every and TIMER_MIN_EVERY_MS or TIMER_MIN_MS)
	next_timer = next_timer + 1
	local id = next_timer
	timers[id] = { fn = fn, owner = C.current_module, every = every and ms or nil }
	core.timer(id, ms)
	local armed = armed_by[coroutine.running() or 0]
	if armed then
		armed[#armed + 1] = id
	end
	return id
end

-- Cancels every timer the given module instances own.
local function cancel_timers_of(modules)
	local owned = {}
	for _, m in ipairs(modules) do
		owned[m] = true
	end
	for id, t in pairs(timers) do
		if t.owner and owned[t.owner] then
			timers[id] = nil
			core.cancel(id)
		end
	end
end

function parley.cancel(id)
	if timers[id] then
		timers[id] = nil
		core.cancel(id)
		return true
	end
	return nil, "no such timer"
end

-- ---- the store's host functions, on either backend ----
-- Every parley.kv and parley.store function below calls its core.kv_* or
-- core.store_* host function through settle(what, kind, ...): the host
-- function answers at once (LMDB: every read, and every write, whose
-- durability a ticket stands for), or returns core.PENDING and a ticket
-- (tickets_pending, core/lua/tickets.h: a store elsewhere, PostgreSQL) and
-- later resumes that ticket (script_resume_with, core/lua/script.h) with
-- the values it would have returned at once, same order, same types. The
-- job waits meanwhile ("read" or "write": the ordering rule, jobs.lua).
-- What a host function that answers later resumes with:
--   - a read (kv_get, kv_keys, store_message, store_sync, store_members,
--     ...): exactly what LMDB's returns.
--   - a write LMDB answers with a ticket it makes durable later
--     (store_set_status, store_read_upto, store_edit, store_annotate,
--     store_hide, store_set_members, store_set_profile): LMDB's values with
--     that ticket as nil, once the write is committed (nothing left to
--     wait for); a write that failed, nil and the store's error.
--   - store_send: rec, created, id, ts, seq, err: LMDB's values with the
--     ticket's wait already done (err nil: committed; else the store's
--     error, as the ticket would have given it); a send refused before it
--     was tried: nil, err.
--   - store_set_last_seen, kv_set, kv_delete: what LMDB's return (nothing;
--     true) once committed, or nil and the store's error.
--   - store_wait: nothing, or the store's error (already this shape on
--     LMDB: tickets.c's store_wait returns PENDING and a ticket).
--   - a call that cannot be answered (the store unreachable) may resume
--     with core.PENDING and a message instead: settle raises it in the job,
--     as the host function would have raised it at once.
-- A host function never answers later outside a job (connect, load,
-- unload and shutdown hooks): settle would raise "... can only wait in".

-- Key-value storage for the running script or plugin (its own namespace,
-- kept in the store across restarts and reloads). Values are anything JSON
-- can hold; ttl_ms makes an entry expire. Writes are visible to reads at
-- once and durable shortly after; kv.wait() waits until they are.
local kv = {}
parley.kv = kv

local function kv_namespace()
	if not C.current_module then
		error("parley.kv is for scripts and plugins", 3)
	end
	return C.current_module.name
end

local function check_key(key)
	if type(key) ~= "string" or key == "" then
		error("parley.kv: keys are non-empty strings", 3)
	end
end

local function expiry_of(ttl_ms)
	if ttl_ms == nil then
		return 0
	end
	if type(ttl_ms) ~= "number" or ttl_ms <= 0 then
		error("parley.kv: ttl_ms must be a positive number", 3)
	end
	return core.now() + ttl_ms
end

function kv.get(key)
	check_key(key)
	local text, err = settle("parley.kv.get", "read", core.kv_get(kv_namespace(), key))
	if text == nil then
		return nil, err
	end
	return json.decode(text)
end

function kv.set(key, value, ttl_ms)
	check_key(key)
	if value == nil then
		return pass(settle("parley.kv.set", "write", core.kv_delete(kv_namespace(), key)))
	end
	local ok, text = pcall(json.encode, value)
	if not ok then
		return nil, "parley.kv: " .. tostring(text)
	end
	return pass(settle("parley.kv.set", "write", core.kv_set(kv_namespace(), key, text,
		expiry_of(ttl_ms))))
end

-- Adds delta (default 1) to a number (absent counts as 0) and returns the
-- new value. Without ttl_ms the entry keeps the expiry it had.
function kv.incr(key, delta, ttl_ms)
	check_key(key)
	delta = delta or 1
	if type(delta) ~= "number" then
		error("parley.kv.incr: delta must be a number", 2)
	end
	local ns = kv_namespace()
	-- A store elsewhere (PostgreSQL) increments in one statement: a read
	-- then a write would let another job's increment in between.
	if core.kv_incr then
		local text, err = settle("parley.kv.incr", "write", core.kv_incr(ns, key, delta,
			ttl_ms ~= nil and expiry_of(ttl_ms) or nil))
		if text == nil then
			return nil, err
		end
		return json.decode(text)
	end
	local text, expiry = settle("parley.kv.incr", "read", core.kv_get(ns, key))
	local value = 0
	if text ~= nil then
		value = json.decode(text)
		if type(value) ~= "number" then
			return nil, "parley.kv.incr: the value is not a number"
		end
	end
	value = value + delta
	local ok, err = settle("parley.kv.incr", "write", core.kv_set(ns, key, json.encode(value),
		ttl_ms ~= nil and expiry_of(ttl_ms) or (expiry or 0)))
	if not ok then
		return nil, err
	end
	return value
end

-- The JSON of a value kv.cas compares: scalars only, whose encoding is
-- one text (a table's key order is not).
local function cas_text(value, what)
	local t = type(value)
	if value == nil then
		return nil
	end
	if t ~= "string" and t ~= "number" and t ~= "boolean" then
		error("parley.kv.cas: " .. what .. " must be nil, a string, a number or a boolean", 3)
	end
	return json.encode(value)
end

-- Sets key to new (nil deletes) if its live value is expected (nil: absent
-- or expired), as one step no other write of any process comes between:
-- true, or false when the value was something else (nothing written), or
-- nil and the store's error. Values are strings, numbers or booleans. New
-- gets ttl_ms, or no expiry.
function kv.cas(key, expected, new, ttl_ms)
	check_key(key)
	local ns = kv_namespace()
	local want, text = cas_text(expected, "expected"), cas_text(new, "the new value")
	local expiry = expiry_of(ttl_ms)
	if want == nil and text == nil then
		local cur, err = settle("parley.kv.cas", "read", core.kv_get(ns, key))
		if cur == nil and err ~= nil then
			return nil, err
		end
		return cur == nil
	end
	-- A store elsewhere (PostgreSQL) compares and writes in one statement.
	if core.kv_cas then
		return pass(settle("parley.kv.cas", "write", core.kv_cas(ns, key, want, text, expiry)))
	end
	-- LMDB: the read answers at once and the write is visible at once, so
	-- nothing runs between the two.
	local cur, err = settle("parley.kv.cas", "read", core.kv_get(ns, key))
	if cur == nil and err ~= nil then
		return nil, err
	end
	if cur ~= want then
		return false
	end
	if text == nil then
		return pass(settle("parley.kv.cas", "write", core.kv_delete(ns, key)))
	end
	return pass(settle("parley.kv.cas", "write", core.kv_set(ns, key, text, expiry)))
end

function kv.delete(key)
	check_key(key)
	return pass(settle("parley.kv.delete", "write", core.kv_delete(kv_namespace(), key)))
end

-- The keys that start with prefix, in order (durable ones only).
function kv.keys(prefix, limit)
	return pass(settle("parley.kv.keys", "read", core.kv_keys(kv_namespace(), prefix or "",
		limit or 1000)))
end

-- Waits until everything written so far is on disk. Returns true, or nil
-- and the store's error.
function kv.wait()
	local err = settle("parley.kv.wait", "write", core.store_wait())
	if err then
		return nil, err
	end
	return true
end

-- The message store (core/store/messages.c): messages in per-conversation
-- sequence, per-recipient status, membership, profiles, last seen. Records
-- come back as raw JSON values (parley.json.raw_text to read them), which
-- emit as they are. Writes are visible at once; send waits until its
-- message is durable, the others return at once and parley.store.wait()
-- waits for everything so far.
local store = {}
parley.store = store

-- send{conversationId, senderId, clientMessageId?, type, content, replyTo?,
-- sender?, recipients} -> record, created, messageId, timestamp, seq
-- (created false: the sender's clientMessageId was seen, nothing new)
-- | nil, err
-- Tells every module's `stored` hook of a message just made durable, in
-- the sender's job (a hook may wait: plugins/push makes its outbox durable
-- before the sender's ack). A hook that fails is logged; the send stands.
local function tell_stored(msg, rec, id, ts, seq)
	local info = { messageId = id, conversationId = msg.conversationId,
		senderId = msg.senderId, sender = msg.sender, type = msg.type,
		content = msg.content, timestamp = ts, seq = seq, record = rec }
	for _, h in ipairs(C.reg.stored or {}) do
		local ok, err = call(h.module, h.fn, info)
		if not ok then
			script_failed(h.module, "stored hook", err)
		end
	end
end

function store.send(msg)
	local rec, created, id, ts, seq, err = settle("parley.store.send", "write",
		core.store_send(msg))
	if rec == nil then
		return nil, created
	end
	-- LMDB: the ticket of the message's durability (a number); answered
	-- later: the error, if any, of a commit already waited for.
	if type(err) == "number" then
		err = wait_for(err, "parley.store.send", "write")
	end
	if err then
		return nil, err
	end
	if created then
		tell_stored(msg, rec, id, ts, seq)
	end
	return rec, created, id, ts, seq
end

-- send_as{conversationId, senderId, clientMessageId?, type, content,
-- replyTo?, profile = {name?, avatar?, phoneNumber?}, roomUsers} ->
-- record, created, messageId, timestamp, seq, members, participants, stale
-- | false (a conversation with registered members, the sender not one)
-- | nil, err
-- Only on a store whose reads wait (PostgreSQL; nil on LMDB, where the
-- separate calls cost nothing): scripts/messages.lua's whole send in one
-- round trip. In the send's own statement: a conversation with members is
-- theirs only, and its recipients are its members (roomUsers, for an open
-- one); the sender's profile is the given fields completed by the stored
-- one. Answers besides the members (nil: open) and the participants as
-- they are after the send, for its announcement; `stale` when this process
-- set a conversation's members since the send was queued (read them again).
if core.store_send_as then
	function store.send_as(msg)
		local rec, created, id, ts, seq, sender, members, participants, stale = settle(
			"parley.store.send_as", "write", core.store_send_as(msg))
		if not rec then
			return rec, created
		end
		if created and C.reg.stored and #C.reg.stored > 0 then
			msg.sender = json.decode(sender)
			tell_stored(msg, rec, id, ts, seq)
		end
		return rec, created, id, ts, seq, members, participants, stale
	end
end

-- A read: the host function `fn`'s answer, waited for when it comes later.
-- On a store whose reads answer at once (LMDB) the host function itself:
-- nothing between a script and its read on the hot path.
local READS_WAIT = core.settings.store_reads_wait
local function read(what, fn)
	if not READS_WAIT then
		return fn
	end
	return function(...)
		return pass(settle(what, "read", fn(...)))
	end
end

-- message(id) -> record, conversationId, senderId, seq, recipients | nil
store.message = read("parley.store.message", core.store_message)
-- sync(conversationId, after_seq, limit[, viewer]) -> raw JSON {messages,
-- hasMore}; messages the viewer deleted for themselves are left out
store.sync = read("parley.store.sync", core.store_sync)
-- sync_before(conversationId, before_seq|nil, limit[, viewer]) -> raw JSON
-- {messages, hasMore}: the `limit` messages just before before_seq (nil:
-- the newest), oldest first; hasMore: older ones exist
store.sync_before = read("parley.store.sync_before", core.store_sync_before)

-- set_status(messageId, userId, "delivered"|"read", open[, conversationId])
-- -> change {messageId, conversationId, senderId, status, changed,
-- updatedAt} | nil, "not found" | "not a recipient", the id refused.
-- `open`: the conversation has no registered members, so anyone may become
-- a recipient. With conversationId, a message of another conversation is
-- "not found". A list of ids gives a list of changes, all or nothing: each
-- id is checked before any is written.
function store.set_status(ids, user, status, open, conv)
	local change, err, id = settle("parley.store.set_status", "write",
		core.store_set_status(ids, user, status, open, conv))
	if type(change) ~= "table" then
		return nil, err, id
	end
	return change
end

-- read(conversationId, userId, upto_seq|nil, open) -> { changes }, count
function store.read(conv, user, upto, open)
	local changes, count = settle("parley.store.read", "write",
		core.store_read_upto(conv, user, upto, open))
	return changes, count
end

-- annotate(messageId, name, value|nil): a plugin's field of the message,
-- shown with it by sync and message() ("reactions", ...).
-- A write whose answer is its ticket, or nothing: true | nil, err.
local function done(ticket, err)
	if ticket == nil and err ~= nil then
		return nil, err
	end
	return true
end

function store.annotate(id, name, value)
	return done(settle("parley.store.annotate", "write", core.store_annotate(id, name, value)))
end

-- edit(messageId, content|nil) -> editedAt | nil, "not found": new content,
-- or with nil a tombstone (content null, deleted true).
function store.edit(id, content)
	local edited_at, err = settle("parley.store.edit", "write", core.store_edit(id, content))
	if not edited_at then
		return nil, err
	end
	return edited_at
end

-- hide(messageId, userId): deleted for that user only.
function store.hide(id, user)
	return done(settle("parley.store.hide", "write", core.store_hide(id, user)))
end

store.members = read("parley.store.members", core.store_members)
store.is_member = read("parley.store.is_member", core.store_is_member)
store.conversations_of = read("parley.store.conversations_of", core.store_conversations_of)
-- inbox(userId, before|nil, limit) -> raw JSON {conversations, hasMore},
-- latest activity first | nil (before is not in the inbox);
-- inbox_item(userId, conversationId) -> raw JSON item | nil;
-- participants(conversationId) -> { userIds } whose inbox holds it
store.inbox = read("parley.store.inbox", core.store_inbox)
store.inbox_item = read("parley.store.inbox_item", core.store_inbox_item)
store.participants = read("parley.store.participants", core.store_participants)
-- inbox_updates(conversationId, { userIds }) -> { {item, users}, ... }:
-- the conversation's item for those users, one per distinct item
store.inbox_updates = read("parley.store.inbox_updates", core.store_inbox_updates)
store.profile = read("parley.store.profile", core.store_profile)
store.last_seen = read("parley.store.last_seen", core.store_last_seen)
-- set_last_seen(userId, ms): nothing | nil, err
function store.set_last_seen(user, ms)
	return pass(settle("parley.store.set_last_seen", "write", core.store_set_last_seen(user, ms)))
end
store.iso_time = core.iso_time

function store.set_members(conv, members)
	return done(settle("parley.store.set_members", "write", core.store_set_members(conv, members)))
end

function store.set_profile(user, profile)
	return done(settle("parley.store.set_profile", "write", core.store_set_profile(user, profile)))
end

-- Waits until every write so far is durable: true | nil, err.
function store.wait()
	local err = settle("parley.store.wait", "write", core.store_wait())
	if err then
		return nil, err
	end
	return true
end

-- What a client is told when a write failed with `err` (from store.send,
-- store.wait or kv.wait): status, message. 507 when the store is full (its
-- map size, or the disk), 503 when it cannot write (an I/O error, a
-- read-only disk, anything else the store says); 500 and `otherwise` only
-- when err is not the store's.
local FULL = {
	MDB_MAP_FULL = "the message store is full: its map size (PARLEY_MAP_SIZE) is reached",
	ENOSPC = "the message store is full: no space is left on the disk",
	EDQUOT = "the message store is full: no space is left on the disk (quota)",
	EFBIG = "the message store is full: its file reached the file size limit",
}
function store.failure(err, otherwise)
	local code = tostring(err):match("^([%u_]+):")
	if code == "PARLEY_EUNAVAILABLE" then
		return 503, "the message store is unavailable: "
			.. tostring(err):match("^[%u_]+: ([^\n]*)")
	end
	if FULL[code] then
		return 507, FULL[code]
	end
	if code then
		return 503, "the message store cannot write now (" .. code .. ")"
	end
	return 500, otherwise or "the write could not be stored"
end

-- Outbound HTTP (core/lua/host_http.c, on libcurl): request{method, url,
-- headers, body, timeout_ms, follow_redirects} waits (the job yields; the
-- server goes on) and returns {status, headers, body}, or nil and "bad
-- URL", "refused", "timeout", "too large", "too many requests in flight"
-- or what else went wrong. Any status is an answer: a 500 is the caller's
-- to judge.
parley.http = {}

function parley.http.request(req)
	if type(req) ~= "table" or type(req.url) ~= "string" then
		error("usage: parley.http.request{method, url, headers, body, timeout_ms}", 2)
	end
	if not coroutine.running() then
		error("parley.http.request can only wait in an event handler, a route, a timer or an "
			.. "ack callback", 2)
	end
	local headers = req.headers
	if headers ~= nil and type(headers) ~= "table" then
		return nil, "headers must be a table"
	end
	local body = req.body
	if body ~= nil and type(body) ~= "string" then
		return nil, "body must be a string"
	end
	local ticket, err = core.http_request(type(req.method) == "string" and req.method:upper()
		or (body and "POST" or "GET"), req.url, headers, body, req.timeout_ms,
		req.follow_redirects == true)
	if not ticket then
		return nil, err
	end
	return wait_for(ticket, "parley.http.request")
end

-- Series of a module's own on /metrics. declare(family, type, help,
-- {series...}) once (in `load`: again after a reload is harmless), then
-- add(series, delta) and set(series, value). type: "counter", "gauge" or
-- "seconds" (a counter of seconds). Names: parley_<lowercase, digits, _>,
-- each series the family's name with optional labels {k="v",...}.
parley.metrics = {}

local function series_ok(family, name)
	if name == family then
		return true
	end
	if name:sub(1, #family + 1) ~= family .. "{" or name:sub(-1) ~= "}" then
		return false
	end
	local labels = name:sub(#family + 2, -2) .. ","
	return labels:gsub('[a-z_]+="[%w_%-%.:]*",', "") == ""
end

function parley.metrics.declare(family, kind, help, series)
	if type(family) ~= "string" or not family:match("^parley_[a-z0-9_]+$") then
		error("parley.metrics.declare: the family is parley_ and lowercase letters, digits, _", 2)
	end
	if kind ~= "counter" and kind ~= "gauge" and kind ~= "seconds" then
		error("parley.metrics.declare: type is counter, gauge or seconds", 2)
	end
	if type(help) ~= "string" or help:find("[\n\\]") then
		error("parley.metrics.declare: help is one line of text", 2)
	end
	series = series or { family }
	if type(series) ~= "table" or #series == 0 then
		error("parley.metrics.declare: series is a list of names", 2)
	end
	for _, name in ipairs(series) do
		if type(name) ~= "string" or not series_ok(family, name) then
			error("parley.metrics.declare: '" .. tostring(name) .. "' is not " .. family
				.. " or " .. family .. '{label="value",...}', 2)
		end
	end
	return core.metric_declare(family, kind, help, series)
end

parley.metrics.add = core.metric_add
parley.metrics.set = core.metric_set

-- A table that survives reloads of the running script or plugin: state a
-- new version takes over from the old one (Prosody's module:shared).
local shared = {} -- module name -> name -> table

function parley.shared(name)
	if not C.current_module then
		error("parley.shared is for scripts and plugins", 2)
	end
	if type(name) ~= "string" then
		error("parley.shared(name): name must be a string", 2)
	end
	local mine = shared[C.current_module.name]
	if not mine then
		mine = {}
		shared[C.current_module.name] = mine
	end
	local t = mine[name]
	if not t then
		t = {}
		mine[name] = t
	end
	return t
end

parley.log = {}
for _, level in ipairs({ "error", "warn", "info", "debug" }) do
	parley.log[level] = function(fmt, ...)
		local msg = select("#", ...) > 0 and string.format(fmt, ...) or tostring(fmt)
		log(level, module_tag(C.current_module) .. ": " .. msg)
	end
end

-- For the parts after this one.
C.parley = parley
C.armed_by = armed_by
C.cancel_timers_of = cancel_timers_of
