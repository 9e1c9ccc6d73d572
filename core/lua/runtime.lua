-- runtime.lua - the Lua half of parley's seam, embedded in the binary.
-- It loads the scripts folder and the enabled plugins into a registry of
-- hooks in a deterministic order, builds the `parley` API that scripts see,
-- and dispatches what the core hands it. `core` is the C host API (script.c).
local core = ...
-- Start a collection when the heap has grown by half, not doubled: every
-- connection leaves a little garbage behind, and at the default pause of
-- 200 a burst of connects keeps twice the live heap (measured: 160 bytes
-- more per idle connection; no change in fan-out throughput).
collectgarbage("setpause", 150)
-- And finish it in fewer, larger steps (each about 10 KB of work instead of
-- 2 KB): the heap then grows less while a cycle is under way. Measured
-- against the default of 200: 120 bytes less per idle connection; fan-out,
-- durable sends and p99 latency unchanged within the noise
-- (docs/benchmarks.md).
collectgarbage("setstepmul", 1000)
-- JSON that keeps arrays as arrays and numbers exact (core/lua/jsonlua.c).
local json = core.json
local json_null = json.null
-- What the guard raises to stop a script that ran past its time budget
-- (core/lua/guard.c); the scripts' pcall and xpcall give it back.
local STOP = core.stop_token
local jit = jit
-- The metatable as it is, past a __metatable field: the runtime's metatables
-- are hidden from scripts (see the sandbox below), not from the runtime.
local metatable_of = debug.getmetatable

local R = {}            -- what the core calls
local reg               -- the registry in force: modules and their hooks
local sockets = {}      -- socket id -> socket table
local timers = {}       -- timer id -> { fn, owner, every }
local next_timer = 0
local current_module    -- the module whose hook is running (for logging)
local default_nsp = "/"

-- ---- helpers ----

local function log(level, msg)
	core.log(level, msg)
end

local function module_tag(m)
	return m and m.name or "runtime"
end

-- ---- what scripts hand back ----
-- A value a script returns or throws may carry a metatable, and its
-- metamethods (__tostring, __index, __concat, ...) are script code: run from
-- here they would loop or throw inside the runtime, where no answer follows.
-- So the runtime never calls them: it reads such values with type() and raw
-- access only, and turns them into text itself.

-- Text for the log that says what `v` is, without running any of its code.
local function describe(v)
	local t = type(v)
	if t == "string" then
		return v
	end
	if t == "number" or t == "boolean" or t == "nil" then
		return tostring(v)
	end
	return "(a " .. t .. ", not a string)"
end

-- What the core sends of an error message (client_error, core/hub/client.c).
local MESSAGE_MAX = 1024

-- `s` cut to MESSAGE_MAX bytes between two characters: the core would cut
-- it there anyway, and text that ends inside a UTF-8 character makes the
-- client's WebSocket library drop the connection.
local function clip(s)
	if #s <= MESSAGE_MAX then
		return s
	end
	local cut = MESSAGE_MAX
	-- A continuation byte (10xxxxxx) after the cut: the cut splits a character.
	while cut > 0 and s:byte(cut + 1) >= 0x80 and s:byte(cut + 1) < 0xC0 do
		cut = cut - 1
	end
	return s:sub(1, cut)
end

-- A refusal (`nil, status, message` from a handler, filter or route; `false,
-- status, message` from a connect or join hook) as the client gets it: the
-- status, the message, and the script's mistake, if any, for the log.
-- `nil, err` (the host functions' convention) is the hook's own refusal with
-- err as its message. A status that is not an integer from 400 to 599 is the
-- script's mistake: a 500 (with its message, when that is good); so is a
-- message that is not text, which is not sent (a fixed one is).
local function refusal(status, message, default_status, default_message)
	if type(status) == "string" and message == nil then
		status, message = default_status, status
	end
	local problem
	if status == nil then
		status = default_status
	elseif type(status) ~= "number" or status % 1 ~= 0 or status < 400 or status > 599 then
		problem = "its status " .. describe(status) .. " is not an integer from 400 to 599"
		status = 500
	end
	if message == nil then
		message = default_message
	elseif type(message) == "number" then
		message = tostring(message)
	end
	if type(message) ~= "string" or not core.utf8_valid(message) then
		problem = (problem and problem .. "; " or "") .. "its message "
			.. (type(message) == "string" and "is not UTF-8" or describe(message))
		return 500, "a script failed", problem
	end
	return status, clip(message), problem
end

-- Calls a hook with the module's name in force; returns pcall's results.
-- (No table for the results: this runs for every hook of every event.)
local function restore_module(saved, ...)
	current_module = saved
	return ...
end

local function call(m, fn, ...)
	local saved = current_module
	current_module = m
	return restore_module(saved, xpcall(fn, debug.traceback, ...))
end

-- A hook's failure: a Lua error is a 500 and logged; a returned refusal
-- (nil/false, status, message) is the client's fault and not logged.
-- Returns the status and message the client gets. The failure may be the
-- memory budget, spent: what the runtime does next to answer gets a budget
-- of its own.
local function script_failed(m, what, err)
	core.renew_budget()
	if err == STOP then
		log("error", module_tag(m) .. ": " .. what .. " was stopped: it ran longer than "
			.. "the script time budget (PARLEY_SCRIPT_TIMEOUT)")
		return 500, "a script took too long"
	end
	log("error", module_tag(m) .. ": " .. what .. " failed: " .. describe(err))
	return 500, "a script failed"
end

-- A refusal as refusal() reads it, its mistake (if any) logged.
local function refused(m, what, status, message, default_status, default_message)
	local st, msg, problem = refusal(status, message, default_status, default_message)
	if problem then
		log("error", module_tag(m) .. ": " .. what .. " refused badly: " .. problem)
	end
	return st, msg
end

-- ---- jobs: work that may wait ----
-- Event handlers, routes, timers and ack callbacks run as jobs, each in a
-- coroutine (reused from a pool), so that a script can wait for what the
-- core does in the background (parley.kv.wait, the store's writes) without
-- blocking anyone: the job yields, and the core resumes it with the result.
-- Connect, disconnect and join hooks answer at once and cannot wait.

local WAIT = {}        -- what a waiting job yields, with its ticket
local waiting = {}     -- ticket -> the job's coroutine
local idle_workers = {}

-- A worker runs a job, offers itself for the next, and runs that one: the
-- tail call keeps its stack flat however many jobs it runs.
local function worker_body(job, ...)
	job(...)
	idle_workers[#idle_workers + 1] = coroutine.running()
	return worker_body(coroutine.yield())
end

-- Runs a resumed or started job until it ends or waits again. (A job
-- catches its own failures and answers its client: this is the last resort.)
local function step(co, ok, tag, ticket)
	if not ok then
		log("error", "runtime: a job failed: " .. describe(tag))
	elseif tag == WAIT then
		waiting[ticket] = co
	end
end

local function run_job(job, ...)
	local co = idle_workers[#idle_workers]
	if co then
		idle_workers[#idle_workers] = nil
	else
		co = coroutine.create(worker_body)
	end
	local saved = current_module
	step(co, coroutine.resume(co, job, ...))
	current_module = saved
end

-- Inside a job: waits for the core to resume `ticket`; returns what it
-- passed (nil, or an error message).
local function wait_for(ticket, what)
	if not coroutine.running() then
		error(what .. " can only wait in an event handler, a route, a timer or an ack callback", 3)
	end
	local saved = current_module
	local err = coroutine.yield(WAIT, ticket)
	current_module = saved
	return err
end

-- ---- binary values (core/lua/binary.lua) ----

local binary = core.binary.binary
local is_binary = core.binary.is_binary
local encode = core.binary.encode
local decode_args = core.binary.decode_args
local resolve_args = core.binary.resolve_args

-- ---- sockets ----

-- A socket table holds only what is asked of it often (id, userId,
-- namespace, user) and what scripts put there: a connection costs Lua
-- memory, and most of the time nothing reads its handshake. The rest is
-- read from the core when asked (handshake, transport).
local Socket = {}
local lazy = {}

function lazy.transport(sock)
	return core.transport(sock.id)
end

-- The handshake as the connect hooks saw it, rebuilt from the core.
local function handshake_table(query, auth_json, authorization, address)
	local auth = auth_json and json.decode(auth_json)
	return { query = query or {}, auth = type(auth) == "table" and auth or {},
		 address = address, headers = { authorization = authorization } }
end

-- The handshake of a socket whose connect hooks are running: they see it
-- as sock.handshake without the socket table growing a field for it.
local connecting = setmetatable({}, { __mode = "k" })

function lazy.handshake(sock)
	local hs = connecting[sock]
	if hs then
		return hs
	end
	hs = handshake_table(core.handshake(sock.id))
	rawset(sock, "handshake", hs)
	return hs
end

Socket.__index = function(sock, k)
	local v = Socket[k]
	if v ~= nil then
		return v
	end
	local f = lazy[k]
	if f then
		return f(sock)
	end
	return nil
end

-- A socket is shared by every module, and a script may keep fields of its
-- own on it; but one module cannot replace a method, or a field the core
-- answers, for the others (sock.emit = ... is refused).
Socket.__newindex = function(sock, k, v)
	if Socket[k] ~= nil or lazy[k] then
		error("sock." .. tostring(k) .. " belongs to the server and cannot be replaced", 2)
	end
	rawset(sock, k, v)
end
-- getmetatable(sock) is false: the methods are not a script's to patch.
Socket.__metatable = false

-- One profile table per connected user, shared by the user's sockets and
-- refreshed by each new connect (the latest profile wins).
local profiles = setmetatable({}, { __mode = "v" })

local function profile_of(identity)
	local user = profiles[identity.userId]
	if not user then
		user = { id = identity.userId }
		profiles[identity.userId] = user
	end
	user.name, user.avatar, user.phoneNumber = identity.name, identity.avatar,
		identity.phoneNumber
	return user
end

local Broadcast = { __metatable = false }
Broadcast.__index = Broadcast

-- The rooms are the builder's own list (its array part), and one skipped
-- socket is its id: sock:to(room):emit(...) makes one table, not three.
local function broadcast_new(nsp)
	return setmetatable({ nsp = nsp }, Broadcast)
end

-- (A number names the room of its text; the core reads only strings.)
function Broadcast:to(room)
	self[#self + 1] = type(room) == "number" and tostring(room) or room
	return self
end

-- Skips a socket (a socket table) or everyone in a room (a string).
function Broadcast:except(x)
	if type(x) == "table" then
		local sids = self.except_sids
		if sids == nil then
			self.except_sids = x.id
		elseif type(sids) == "string" then
			self.except_sids = { sids, x.id }
		else
			sids[#sids + 1] = x.id
		end
	else
		self.except_rooms = self.except_rooms or {}
		self.except_rooms[#self.except_rooms + 1] = type(x) == "number" and tostring(x) or x
	end
	return self
end

-- Emits to the rooms (every socket of the namespace when none was named).
-- Returns the number of sockets reached.
function Broadcast:emit(event, data)
	local json, att, plain = encode(data)
	local rooms = #self > 0 and self or nil
	return core.broadcast(self.nsp, rooms, self.except_sids, self.except_rooms,
		event, json, att, plain)
end

function Socket:emit(event, data)
	local json, att, plain = encode(data)
	return core.emit(self.id, event, json, att, plain)
end

-- Emits and waits for the client's ack: cb(err, ...) with err nil, or
-- "timeout" / "disconnected".
function Socket:request(event, data, timeout_ms, cb)
	local json, att, plain = encode(data)
	local id = core.request(self.id, event, json, att, plain, timeout_ms or 5000)
	if not id then
		return nil, "socket is gone"
	end
	self.pending = self.pending or {}
	self.pending[id] = { cb = cb, owner = current_module }
	return id
end

-- Joins a room after every join hook agreed; returns true or nil, err.
function Socket:join(room)
	if type(room) ~= "string" or room == "" then
		return nil, "room must be a non-empty string"
	end
	for _, h in ipairs(reg.join) do
		local ok, allowed, status, message = call(h.module, h.fn, self, room)
		if not ok then
			local st, msg = script_failed(h.module, "join hook", allowed)
			return nil, { status = st, message = msg }
		end
		if allowed == false then
			local st, msg = refused(h.module, "join hook", status, message, 403, "forbidden")
			return nil, { status = st, message = msg }
		end
	end
	local ok, err = core.join(self.id, room)
	if ok == nil and err == "too many rooms" then
		return nil, { status = 429, message = "too many rooms for one socket" }
	end
	return ok, err
end

function Socket:leave(room)
	return core.leave(self.id, room)
end

function Socket:rooms()
	return core.rooms(self.id)
end

-- Whether this socket is in the room (false once it is gone).
function Socket:in_room(room)
	return core.in_room(self.id, room)
end

-- A broadcast to `room` that skips this socket.
function Socket:to(room)
	return broadcast_new(self.namespace):to(room):except(self)
end

-- Stops reading from this socket's connection for ms (at most 60 s): its
-- client's further events wait in TCP, and it slows down.
function Socket:throttle(ms)
	core.throttle(self.id, ms)
end

function Socket:disconnect()
	return core.disconnect(self.id)
end

-- Logs with the module and the socket in the line:
-- "chat: socket Xy (user-1): text".
function Socket:log(level, fmt, ...)
	local msg = select("#", ...) > 0 and string.format(fmt, ...) or tostring(fmt)
	log(level, module_tag(current_module) .. ": socket " .. self.id .. " ("
		.. tostring(self.userId) .. "): " .. msg)
end

function Socket:error(status, message, ack)
	core.error(self.id, status, message, ack)
end

-- ---- the API scripts see ----

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
-- on), ping_interval, ping_timeout, max_payload. Read-only, like all of
-- `parley` as a module sees it (sandbox_env).
parley.settings = core.settings

function parley.namespace()
	return default_nsp
end

-- The namespaces the modules in force serve, sorted: a room of the same
-- name may exist in each.
function parley.namespaces()
	local list = {}
	for nsp in pairs(reg.namespaces) do
		list[#list + 1] = nsp
	end
	table.sort(list)
	return list
end

-- A broadcast to a room of the default namespace (parley.of for another).
function parley.to(room)
	return broadcast_new(default_nsp):to(room)
end

-- parley.of(nsp):to(room) / :emit(event, data). A new object each call,
-- as cheap as a broadcast: a cached one would be shared by every module,
-- and one could change it for the others.
local Namespace = { __metatable = false }
Namespace.__index = Namespace

function Namespace:to(room)
	return broadcast_new(self.name):to(room)
end

function Namespace:emit(event, data)
	return broadcast_new(self.name):emit(event, data)
end

function parley.of(nsp)
	return setmetatable({ name = nsp }, Namespace)
end

-- Every socket of the default namespace.
function parley.everyone()
	return broadcast_new(default_nsp)
end

function parley.socket(id)
	return sockets[id]
end

-- The ids of the sockets in a room.
function parley.room_sockets(room, nsp)
	return core.room_sockets(nsp or default_nsp, room)
end

-- The users whose sockets are in a room, each once (an array).
function parley.room_users(room, nsp)
	return core.room_users(nsp or default_nsp, room)
end

function parley.room_size(room, nsp)
	return core.room_size(nsp or default_nsp, room)
end

-- How many sockets a user has connected in the namespace.
function parley.user_sockets(user_id, nsp)
	return core.room_size(nsp or default_nsp, "user:" .. user_id)
end

-- The users with a socket connected to the namespace (an array).
function parley.online_users(nsp)
	return core.online_users(nsp or default_nsp)
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

function parley.timer(ms, fn, every)
	if type(ms) ~= "number" or ms ~= ms or ms < 0 or type(fn) ~= "function" then
		return nil, "usage: parley.timer(ms, fn[, every])"
	end
	ms = math.max(ms, every and TIMER_MIN_EVERY_MS or TIMER_MIN_MS)
	next_timer = next_timer + 1
	local id = next_timer
	timers[id] = { fn = fn, owner = current_module, every = every and ms or nil }
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

-- Key-value storage for the running script or plugin (its own namespace,
-- kept in the store across restarts and reloads). Values are anything JSON
-- can hold; ttl_ms makes an entry expire. Writes are visible to reads at
-- once and durable shortly after; kv.wait() waits until they are.
local kv = {}
parley.kv = kv

local function kv_namespace()
	if not current_module then
		error("parley.kv is for scripts and plugins", 3)
	end
	return current_module.name
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
	local text, err = core.kv_get(kv_namespace(), key)
	if text == nil then
		return nil, err
	end
	return json.decode(text)
end

function kv.set(key, value, ttl_ms)
	check_key(key)
	if value == nil then
		return core.kv_delete(kv_namespace(), key)
	end
	local ok, text = pcall(json.encode, value)
	if not ok then
		return nil, "parley.kv: " .. tostring(text)
	end
	return core.kv_set(kv_namespace(), key, text, expiry_of(ttl_ms))
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
	local text, expiry = core.kv_get(ns, key)
	local value = 0
	if text ~= nil then
		value = json.decode(text)
		if type(value) ~= "number" then
			return nil, "parley.kv.incr: the value is not a number"
		end
	end
	value = value + delta
	local ok, err = core.kv_set(ns, key, json.encode(value),
		ttl_ms ~= nil and expiry_of(ttl_ms) or (expiry or 0))
	if not ok then
		return nil, err
	end
	return value
end

function kv.delete(key)
	check_key(key)
	return core.kv_delete(kv_namespace(), key)
end

-- The keys that start with prefix, in order (durable ones only).
function kv.keys(prefix, limit)
	return core.kv_keys(kv_namespace(), prefix or "", limit or 1000)
end

-- Waits until everything written so far is on disk. Returns true, or nil
-- and the store's error.
function kv.wait()
	local err = wait_for(core.store_wait(), "parley.kv.wait")
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
function store.send(msg)
	local rec, created, id, ts, seq, ticket = core.store_send(msg)
	local err = wait_for(ticket, "parley.store.send")
	if err then
		return nil, err
	end
	return rec, created, id, ts, seq
end

-- message(id) -> record, conversationId, senderId, seq, recipients | nil
store.message = core.store_message
-- sync(conversationId, after_seq, limit[, viewer]) -> raw JSON {messages,
-- hasMore}; messages the viewer deleted for themselves are left out
store.sync = core.store_sync

-- set_status(messageId, userId, "delivered"|"read", open[, conversationId])
-- -> change {messageId, conversationId, senderId, status, changed,
-- updatedAt} | nil, "not found" | "not a recipient", the id refused.
-- `open`: the conversation has no registered members, so anyone may become
-- a recipient. With conversationId, a message of another conversation is
-- "not found". A list of ids gives a list of changes, all or nothing: each
-- id is checked before any is written.
function store.set_status(ids, user, status, open, conv)
	local change, err, id = core.store_set_status(ids, user, status, open, conv)
	if type(change) ~= "table" then
		return nil, err, id
	end
	return change
end

-- read(conversationId, userId, upto_seq|nil, open) -> { changes }, count
function store.read(conv, user, upto, open)
	local changes, count = core.store_read_upto(conv, user, upto, open)
	return changes, count
end

-- annotate(messageId, name, value|nil): a plugin's field of the message,
-- shown with it by sync and message() ("reactions", ...).
function store.annotate(id, name, value)
	core.store_annotate(id, name, value)
	return true
end

-- edit(messageId, content|nil) -> editedAt | nil, "not found": new content,
-- or with nil a tombstone (content null, deleted true).
function store.edit(id, content)
	local edited_at, err = core.store_edit(id, content)
	if not edited_at then
		return nil, err
	end
	return edited_at
end

-- hide(messageId, userId): deleted for that user only.
function store.hide(id, user)
	core.store_hide(id, user)
	return true
end

store.members = core.store_members
store.is_member = core.store_is_member
store.conversations_of = core.store_conversations_of
store.profile = core.store_profile
store.last_seen = core.store_last_seen
store.set_last_seen = core.store_set_last_seen
store.iso_time = core.iso_time

function store.set_members(conv, members)
	core.store_set_members(conv, members)
	return true
end

function store.set_profile(user, profile)
	core.store_set_profile(user, profile)
	return true
end

-- Waits until every write so far is durable: true | nil, err.
function store.wait()
	local err = wait_for(core.store_wait(), "parley.store.wait")
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
	if FULL[code] then
		return 507, FULL[code]
	end
	if code then
		return 503, "the message store cannot write now (" .. code .. ")"
	end
	return 500, otherwise or "the write could not be stored"
end

-- A table that survives reloads of the running script or plugin: state a
-- new version takes over from the old one (Prosody's module:shared).
local shared = {} -- module name -> name -> table

function parley.shared(name)
	if not current_module then
		error("parley.shared is for scripts and plugins", 2)
	end
	if type(name) ~= "string" then
		error("parley.shared(name): name must be a string", 2)
	end
	local mine = shared[current_module.name]
	if not mine then
		mine = {}
		shared[current_module.name] = mine
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
		log(level, module_tag(current_module) .. ": " .. msg)
	end
end

-- ---- loading ----

-- A script's pcall cannot keep the guard's stop: it raises it again.
local function pass_stop(ok, ...)
	if not ok and (...) == STOP then
		error(STOP, 0)
	end
	return ok, ...
end

local function safe_pcall(f, ...)
	return pass_stop(pcall(f, ...))
end

local function safe_xpcall(f, handler, ...)
	return pass_stop(xpcall(f, function(e)
		if e == STOP then
			return STOP
		end
		return handler(e)
	end, ...))
end

-- ---- the sandbox ----
-- Every module runs in an environment of its own (STYLE.md 12): its own
-- globals, its own copies of string, table and math, and its own read-only
-- view of `parley`. What a module does to them (string.upper = ..., even
-- rawset on its view of parley) it does to itself alone, and its next
-- version starts afresh. What modules share on purpose is explicit:
-- parley.shared (one module's state across its versions), parley.kv, the
-- store, and the socket tables. The views are built once per module load;
-- a call through one costs a metatable __index step, no function call.
-- No io, os, debug, jit, ffi, require or load.

local viewed = setmetatable({}, { __mode = "k" }) -- view -> the table it shows

local function read_only(t, what)
	local view = setmetatable({}, {
		__index = t,
		__newindex = function(_, k)
			error(what .. " is read-only (setting " .. tostring(k) .. ")", 2)
		end,
		__metatable = false,
	})
	viewed[view] = t
	return view
end

-- A read-only view of t, whose tables are views too (parley.store, ...).
local function view_of(t, what)
	local shown = {}
	for k, v in pairs(t) do
		if type(v) == "table" then
			v = view_of(v, what .. "." .. k)
		end
		shown[k] = v
	end
	return read_only(shown, what)
end

-- next and pairs see through a view (LuaJIT has no __pairs) without
-- handing out the table behind it; other tables go to the real ones.
local function view_next(t, k)
	return next(viewed[t] or t, k)
end

local function view_pairs(t)
	if viewed[t] then
		return view_next, t, nil
	end
	return pairs(t)
end

-- Strings keep the real metatable, so s:find() reaches the real string
-- functions (the C ones included); but getmetatable("") gives a script
-- false, not the table every module's strings go through. The same for
-- the metatables the JSON values share (arrays, big numbers, raw JSON).
string.dump = nil
metatable_of("").__metatable = false
json.array_mt.__metatable = false
metatable_of(json.number("1")).__metatable = false
metatable_of(json.raw("1")).__metatable = false

local function copy(t)
	local out = {}
	for k, v in pairs(t) do
		out[k] = v
	end
	return out
end

local function sandbox_env(name)
	local env = {
		assert = assert, error = error, ipairs = ipairs, next = view_next,
		pairs = view_pairs, pcall = safe_pcall, select = select,
		tonumber = tonumber, tostring = tostring, type = type, unpack = unpack,
		xpcall = safe_xpcall, setmetatable = setmetatable,
		getmetatable = getmetatable, rawget = rawget, rawset = rawset,
		rawequal = rawequal,
		string = copy(string), table = copy(table), math = copy(math),
		parley = view_of(parley, "parley"),
	}
	env.print = function(...)
		local parts = {}
		for i = 1, select("#", ...) do
			parts[#parts + 1] = tostring((select(i, ...)))
		end
		log("info", name .. ": " .. table.concat(parts, "\t"))
	end
	return env
end

-- ---- plugin configuration ----
-- A plugin may declare its configuration in plugins/<name>/schema.lua: a
-- table of field -> { type = "number"|"integer"|"string"|"boolean"|"table",
-- default, required, min, max, one_of = {...}, fields = {schema} (a record),
-- values = {spec} (a map), items = {spec} (an array) }. The configuration
-- (the config file's plugin_config[name]) is checked against it and filled
-- with defaults before the plugin runs; what it got is its global `config`.

local function deep_copy(v)
	if type(v) ~= "table" then
		return v
	end
	local out = {}
	for k, x in pairs(v) do
		out[k] = deep_copy(x)
	end
	return out
end

local check_record

local function check_value(spec, v, where)
	if v == nil then
		if spec.default ~= nil then
			return deep_copy(spec.default)
		end
		if spec.required then
			return nil, where .. " is required"
		end
		return nil
	end
	local t = spec.type
	local ok = (t == "integer" and type(v) == "number" and v == math.floor(v))
		or (t ~= "integer" and type(v) == t)
	if not ok then
		return nil, where .. ": expected " .. (t == "integer" and "an integer" or "a " .. t)
			.. ", got " .. type(v)
	end
	if type(v) == "number" then
		if spec.min and v < spec.min then
			return nil, where .. ": at least " .. spec.min
		end
		if spec.max and v > spec.max then
			return nil, where .. ": at most " .. spec.max
		end
	end
	if spec.one_of then
		local found = false
		for _, x in ipairs(spec.one_of) do
			found = found or x == v
		end
		if not found then
			return nil, where .. ": must be one of " .. table.concat(spec.one_of, ", ")
		end
	end
	if t == "table" then
		if spec.fields then
			return check_record(spec.fields, v, where)
		end
		local out = {}
		for k, x in pairs(v) do
			local sub = spec.values or (spec.items and type(k) == "number" and spec.items)
			if spec.items and type(k) ~= "number" then
				return nil, where .. ": expected an array"
			end
			if sub then
				local cv, err = check_value(sub, x, where .. "[" .. tostring(k) .. "]")
				if err then
					return nil, err
				end
				out[k] = cv
			else
				out[k] = deep_copy(x)
			end
		end
		return out
	end
	return v
end

function check_record(schema, given, where)
	local out = {}
	given = given or {}
	for k in pairs(given) do
		if schema[k] == nil then
			return nil, where .. ": unknown setting '" .. tostring(k) .. "'"
		end
	end
	for k, spec in pairs(schema) do
		local v, err = check_value(spec, given[k], where .. "." .. k)
		if err then
			return nil, err
		end
		out[k] = v
	end
	return out
end

-- The plugin's schema.lua beside its init.lua, if there is one.
local function load_schema(dir)
	local src = core.read_file(dir .. "/schema.lua")
	if not src then
		return nil
	end
	local chunk, err = loadstring(src, "@" .. dir .. "/schema.lua")
	if not chunk then
		return false, err
	end
	setfenv(chunk, {})
	local ok, schema = pcall(chunk)
	if not ok or type(schema) ~= "table" then
		return false, dir .. "/schema.lua: must return a table of fields"
			.. (ok and "" or ": " .. tostring(schema))
	end
	return schema
end

-- Compiles and runs one module file; returns its hook table or nil, err.
local function load_module(path, name, config)
	local src, err = core.read_file(path)
	if not src then
		return nil, err
	end
	local chunk, cerr = loadstring(src, "@" .. path)
	if not chunk then
		return nil, cerr
	end
	-- LuaJIT runs no hooks in compiled code, so the guard could not stop a
	-- hot loop: every function of a script stays interpreted.
	jit.off(chunk, true)
	local dir = path:match("^(.*)/init%.lua$")
	if dir then
		local schema, serr = load_schema(dir)
		if schema == false then
			return nil, serr
		end
		if schema then
			local checked, cerr2 = check_record(schema, config, "plugin_config." .. name)
			if not checked then
				return nil, "plugin '" .. name .. "': " .. cerr2
			end
			config = checked
		end
	end
	local env = sandbox_env(name)
	env.config = config or {}
	setfenv(chunk, env)
	local m = { name = name, path = path }
	local ok, hooks = call(m, chunk)
	if not ok then
		if hooks == STOP then
			return nil, path .. ": stopped: loading it ran longer than the script time budget"
		end
		return nil, describe(hooks)
	end
	if type(hooks) ~= "table" then
		return nil, path .. ": must return a table of hooks"
	end
	-- A plain copy (pairs is raw): an __index on the module's table would
	-- run its code each time the runtime looks a hook up.
	m.hooks = {}
	for k, v in pairs(hooks) do
		m.hooks[k] = v
	end
	m.priority = tonumber(m.hooks.priority) or 0
	return m
end

local hook_names = { "connect", "connected", "disconnect", "join", "filter", "load", "unload",
	"shutdown" }

-- "GET /api/users/:id" -> method, segments ({"api", "users", ":id"}).
local function parse_route(spec)
	local method, path = spec:match("^(%u+)%s+(/api/%S*)$")
	if not method then
		return nil
	end
	local parts = {}
	for seg in path:gmatch("[^/]+") do
		parts[#parts + 1] = seg
	end
	return method, parts
end

local function registry_new(modules)
	local r = { modules = modules, events = {}, namespaces = {}, default = nil, routes = {} }
	local route_owner = {}
	for _, n in ipairs(hook_names) do
		r[n] = {}
	end
	-- Priority first (higher runs first), then configuration order.
	for i, m in ipairs(modules) do
		m.order = i
	end
	table.sort(modules, function(a, b)
		if a.priority ~= b.priority then
			return a.priority > b.priority
		end
		return a.order < b.order
	end)
	for _, m in ipairs(modules) do
		local h = m.hooks
		for _, n in ipairs(hook_names) do
			if h[n] ~= nil then
				if type(h[n]) ~= "function" then
					return nil, m.path .. ": hook '" .. n .. "' must be a function"
				end
				r[n][#r[n] + 1] = { module = m, fn = h[n] }
			end
		end
		if h.events ~= nil then
			if type(h.events) ~= "table" then
				return nil, m.path .. ": 'events' must be a table of handlers"
			end
			for event, fn in pairs(h.events) do
				if type(event) ~= "string" or type(fn) ~= "function" then
					return nil, m.path .. ": events must map names to functions"
				end
				r.events[event] = r.events[event] or {}
				local list = r.events[event]
				list[#list + 1] = { module = m, fn = fn }
			end
		end
		if h.routes ~= nil then
			if type(h.routes) ~= "table" then
				return nil, m.path .. ": 'routes' must be a table of handlers"
			end
			for spec, fn in pairs(h.routes) do
				local method, parts
				if type(spec) == "string" then
					method, parts = parse_route(spec)
				end
				if not method or type(fn) ~= "function" then
					return nil, m.path .. ": route '" .. describe(spec)
						.. "' must be \"METHOD /api/...\" mapped to a function"
				end
				local shape = method .. " /" .. table.concat(parts, "/"):gsub(":[^/]+", ":")
				if route_owner[shape] then
					return nil, m.path .. ": route '" .. spec .. "' is already served by "
						.. route_owner[shape]
				end
				route_owner[shape] = m.name
				r.routes[#r.routes + 1] = { method = method, parts = parts, module = m, fn = fn }
			end
		end
		for _, nsp in ipairs(h.namespaces or {}) do
			if type(nsp) ~= "string" or nsp:sub(1, 1) ~= "/" then
				return nil, m.path .. ": namespaces must be strings starting with '/'"
			end
			r.namespaces[nsp] = true
			if not r.default and nsp ~= "/" then
				r.default = nsp
			end
		end
	end
	return r
end

-- Finds plugin `name` on the ';'-separated search path.
local function find_plugin(name, path)
	for dir in string.gmatch(path, "[^;]+") do
		local file = dir .. "/" .. name .. "/init.lua"
		if core.read_file(file) then
			return file
		end
	end
	return nil
end

-- The config file's plugin_config table (read again at each load, so that
-- a reload picks up changes), or nil.
local function read_plugin_config(file)
	if not file then
		return nil
	end
	local src = core.read_file(file)
	if not src then
		return nil
	end
	local chunk = loadstring(src, "@" .. file)
	if not chunk then
		return nil
	end
	setfenv(chunk, {})
	local ok, t = pcall(chunk)
	if ok and type(t) == "table" and type(t.plugin_config) == "table" then
		return t.plugin_config
	end
	return nil
end

-- Runs a hook of each module that has it (unload of the version going
-- away, shutdown); logs failures and goes on (it goes either way).
local function run_each(modules, hook)
	for _, m in ipairs(modules) do
		if m.hooks[hook] then
			local ok, err = call(m, m.hooks[hook])
			if not ok then
				script_failed(m, hook .. " hook", err)
			end
		end
	end
end

-- Runs the load hook of each module of a new version, while the old one
-- is still in force; nil, err (the module, the file and line) at the
-- first that fails.
local function run_load(modules)
	for _, m in ipairs(modules) do
		if m.hooks.load then
			local ok, err = call(m, m.hooks.load)
			if not ok then
				if err == STOP then
					return nil, m.path .. ": load hook stopped: it ran longer than the "
						.. "script time budget (PARLEY_SCRIPT_TIMEOUT)"
				end
				return nil, m.name .. ": load hook failed: " .. describe(err)
			end
		end
	end
	return true
end

local files_loaded = {}

-- Builds every module of a load; nil, err at the first that fails.
local function build(scripts_dir, plugins, plugin_path, plugin_config, modules, files)
	local list_src, err = core.read_file(scripts_dir .. "/init.lua")
	if not list_src then
		return nil, err
	end
	files[#files + 1] = scripts_dir .. "/init.lua"
	local list_chunk, lerr = loadstring(list_src, "@" .. scripts_dir .. "/init.lua")
	if not list_chunk then
		return nil, lerr
	end
	setfenv(list_chunk, {})
	local ok, names = pcall(list_chunk)
	if not ok or type(names) ~= "table" then
		return nil, scripts_dir .. "/init.lua: must return a list of script names"
			.. (ok and "" or (": " .. tostring(names)))
	end
	for _, name in ipairs(names) do
		local file = scripts_dir .. "/" .. name .. ".lua"
		files[#files + 1] = file
		local m, merr = load_module(file, name, plugin_config and plugin_config[name])
		if not m then
			return nil, merr
		end
		modules[#modules + 1] = m
	end
	for name in string.gmatch(plugins or "", "[^,]+") do
		local file = find_plugin(name, plugin_path)
		if not file then
			return nil, "plugin '" .. name .. "' not found in " .. plugin_path
		end
		files[#files + 1] = file
		local m, merr = load_module(file, name, plugin_config and plugin_config[name])
		if not m then
			return nil, merr
		end
		modules[#modules + 1] = m
	end
	return registry_new(modules)
end

-- Brings a new version up beside the one in force (STYLE.md 15): compiles
-- and runs every module, builds the registry, runs the new load hooks,
-- and only if all of that succeeded swaps it in; then the old modules get
-- their unload hook and lose their timers. On any error the old version
-- goes on untouched (its timers, its registry) and the new modules'
-- timers go. The core calls this between loop iterations.
-- Returns true or nil, err.
function R.load(scripts_dir, plugins, plugin_path, config_file)
	local modules, files = {}, {}
	-- Protected: whatever fails (memory the budget refuses, say), the
	-- timers the new modules set go with them below.
	local built, r, err = pcall(build, scripts_dir, plugins, plugin_path,
		read_plugin_config(config_file), modules, files)
	if not built then
		r, err = nil, describe(r)
	end
	if r then
		-- The load hooks see the namespace they will serve as the default
		-- (parley.to, parley.namespace).
		local old_nsp = default_nsp
		default_nsp = r.default or "/"
		local ok, lerr = run_load(r.modules)
		if not ok then
			default_nsp = old_nsp
			r, err = nil, lerr
		end
	end
	if not r then
		cancel_timers_of(modules)
		return nil, err
	end
	for nsp in pairs(r.namespaces) do
		core.namespace(nsp)
	end
	local old = reg
	reg = r
	files_loaded = files
	if old then
		run_each(old.modules, "unload")
		cancel_timers_of(old.modules)
	end
	return true
end

-- The server is stopping: every socket has disconnected, and the store
-- commits what the shutdown hooks write before it closes.
function R.shutdown()
	if reg then
		run_each(reg.modules, "shutdown")
	end
end

-- The files the registry in force came from (the core watches them).
function R.files()
	return files_loaded
end

-- ---- dispatch from the core ----

-- Runs the connect hooks in order: the identity the first one gave, or
-- nil, status, message (a refusal, or a hook that failed).
local function identify(sock, hs, nsp, address)
	local identity
	for _, h in ipairs(reg.connect) do
		local ok, res, status, message = call(h.module, h.fn, sock, hs)
		if not ok then
			return nil, script_failed(h.module, "connect hook", res)
		end
		if res == false then
			local st, msg = refused(h.module, "connect hook", status, message, 401,
				"unauthorized")
			log("info", "connect refused (" .. st .. ", " .. nsp .. ", " .. tostring(address)
				.. "): " .. msg)
			return nil, st, msg
		end
		if type(res) == "table" and not identity then
			-- Read raw: the fields are the script's, an __index is its code.
			local user_id = rawget(res, "userId")
			if type(user_id) ~= "string" or user_id == "" then
				return nil, script_failed(h.module, "connect hook",
					"the identity it returned has no string userId")
			end
			if user_id:find("\0", 1, true) then
				-- The core keeps it as a C string, which would end there.
				return nil, script_failed(h.module, "connect hook",
					"the identity it returned has a NUL in its userId")
			end
			identity = { userId = user_id, name = rawget(res, "name"),
				avatar = rawget(res, "avatar"), phoneNumber = rawget(res, "phoneNumber") }
			rawset(sock, "userId", user_id)
			rawset(sock, "user", profile_of(identity))
		end
	end
	if not identity then
		log("info", "connect refused (401, " .. nsp .. ", " .. tostring(address)
			.. "): nobody identified the socket")
		return nil, 401, "unauthorized"
	end
	return identity
end

-- A new socket: runs the connect hooks. Returns the user id, or nil with a
-- status and a message.
function R.connect(id, nsp, query, auth_json, authorization, address)
	local hs = handshake_table(query, auth_json, authorization, address)
	-- Sized for the fields every socket gets: one allocation, no rehash.
	local sock = setmetatable({ id = id, namespace = nsp, userId = nil, user = nil }, Socket)
	connecting[sock] = hs
	local identity, status, message = identify(sock, hs, nsp, address)
	connecting[sock] = nil
	if not identity then
		return nil, status, message
	end
	local most = core.settings.max_user_sockets
	if most > 0 and core.room_size(nsp, "user:" .. identity.userId) >= most then
		core.limit("max_user_sockets", "user " .. identity.userId .. " has " .. most
			.. " sockets already (PARLEY_MAX_USER_SOCKETS): connect refused")
		return nil, 429, "too many connections for this user"
	end
	sockets[id] = sock
	return identity.userId
end

-- The socket is in its user's room: run the connected hooks.
function R.connected(id)
	local sock = sockets[id]
	for _, h in ipairs(reg.connected) do
		local ok, err = call(h.module, h.fn, sock)
		if not ok then
			script_failed(h.module, "connected hook", err)
		end
	end
end

function R.disconnect(id, reason)
	local sock = sockets[id]
	if not sock then
		return
	end
	for _, h in ipairs(reg.disconnect) do
		local ok, err = call(h.module, h.fn, sock, reason)
		if not ok then
			script_failed(h.module, "disconnect hook", err)
		end
	end
	sockets[id] = nil
end

-- A refusal a server operator wants to see: someone acting as somebody
-- else, or where they do not belong. (status and message as refusal() gave.)
local function log_refusal(sock, event, status, message)
	if status == 401 or status == 403 then
		log("info", "refused (" .. status .. ") " .. event .. " from socket " .. sock.id .. " ("
			.. tostring(sock.userId) .. "): " .. message)
	end
end

local function send_ack(id, ack, result)
	local json, att_out = encode(result)
	core.ack(id, ack, json, att_out)
end

-- An event's filters, then its handlers, then the ack. Every way out
-- answers the client: the ack (when it asked for one), or an error event
-- (and the ack with it).
local function answer_event(sock, handlers, name, data, ack)
	local id = sock.id
	for _, h in ipairs(reg.filter) do
		local ok, res, status, message = call(h.module, h.fn, sock, name, data)
		if not ok then
			local st, msg = script_failed(h.module, "filter for " .. name, res)
			core.error(id, st, msg, ack)
			return
		end
		if res == nil and status then
			local st, msg = refused(h.module, "filter for " .. name, status, message, 400,
				"rejected")
			log_refusal(sock, name, st, msg)
			core.error(id, st, msg, ack)
			return
		end
		if res ~= nil then
			data = res
		end
	end
	local result, result_module
	for _, h in ipairs(handlers) do
		local ok, res, status, message = call(h.module, h.fn, sock, data)
		if not ok then
			local st, msg = script_failed(h.module, "handler for " .. name, res)
			core.error(id, st, msg, ack)
			return
		end
		if res == nil and status then
			local st, msg = refused(h.module, "handler for " .. name, status, message, 400,
				"failed")
			log_refusal(sock, name, st, msg)
			core.error(id, st, msg, ack)
			return
		end
		if result == nil then
			result, result_module = res, h.module
		end
	end
	if ack then
		-- A result with no JSON form is the handler's failure: the client
		-- gets its 500, not silence.
		local ok, err = pcall(send_ack, id, ack, result)
		if not ok then
			local st, msg = script_failed(result_module, "the result of the handler for "
				.. name, err)
			core.error(id, st, msg, ack)
		end
	end
end

-- One job. Should the runtime's own work fail (no memory left under the
-- budget, a bug), the client is still answered.
local function event_job(sock, handlers, name, data, ack)
	local ok, err = pcall(answer_event, sock, handlers, name, data, ack)
	if not ok then
		core.renew_budget()
		pcall(core.error, sock.id, 500, "a script failed", ack)
		log("error", "runtime: the event " .. name .. " failed: " .. describe(err))
	end
end

-- A client event. Returns false for an event no script handles.
-- args: the event's arguments, decoded by the core.
function R.event(id, name, args, att, ack)
	local sock = sockets[id]
	if not sock then
		return true
	end
	local handlers = reg.events[name]
	if not handlers then
		core.error(id, 404, clip("unknown event: " .. name), ack)
		return false
	end
	local derr
	args, derr = resolve_args(args, att)
	if not args then
		core.error(id, derr.status, derr.message, ack)
		return true
	end
	run_job(event_job, sock, handlers, name, args[1], ack)
	return true
end

local function callback_job(owner, cb, what, ...)
	local ok, err = call(owner, cb, ...)
	if not ok then
		script_failed(owner, what, err)
	end
end

-- The client answered (or did not) a Socket:request.
function R.ack(id, ack_id, args_json, att, why)
	local sock = sockets[id]
	local p = sock and sock.pending and sock.pending[ack_id]
	if not p then
		return
	end
	sock.pending[ack_id] = nil
	if why then
		run_job(callback_job, p.owner, p.cb, "ack callback", why)
		return
	end
	-- An answer whose placeholders name no attachment is no answer: the
	-- callback is told so rather than handed nothing as a success.
	local args = decode_args(args_json, att)
	if not args then
		run_job(callback_job, p.owner, p.cb, "ack callback", "invalid")
		return
	end
	run_job(callback_job, p.owner, p.cb, "ack callback", nil,
		unpack(args, 1, table.maxn(args)))
end

-- ---- HTTP routes ----

local function http_error(id, status, message)
	core.http_respond(id, status, json.encode({ status = "error", statusCode = status,
		message = message }))
end

-- Finds the route for a path: the route and its params, or nil and the
-- status (404: no such path; 405: the path exists for other methods).
local function match_route(method, path)
	local parts = {}
	for seg in path:gmatch("[^/]+") do
		parts[#parts + 1] = seg
	end
	local path_found = false
	for _, route in ipairs(reg.routes) do
		if #route.parts == #parts then
			local params = {}
			local ok = true
			for i, seg in ipairs(route.parts) do
				if seg:sub(1, 1) == ":" then
					params[seg:sub(2)] = parts[i]
				elseif seg ~= parts[i] then
					ok = false
					break
				end
			end
			if ok then
				path_found = true
				if route.method == method then
					return route, params
				end
			end
		end
	end
	return nil, path_found and 405 or 404
end

-- A route's outcome as an HTTP answer: a value (200), a status and a value,
-- nothing (200, no body), or a refusal (nil, status, message).
local function answer_route(id, route, req)
	local what = "route " .. req.method .. " " .. req.path
	local ok, a, b, c = call(route.module, route.fn, req)
	if not ok then
		return http_error(id, script_failed(route.module, what, a))
	end
	if a == nil and b ~= nil then
		return http_error(id, refused(route.module, what, b, c, 400, "failed"))
	end
	local status, body = 200, a
	if type(a) == "number" then
		if a % 1 ~= 0 or a < 200 or a > 599 then
			return http_error(id, script_failed(route.module, what, "its status "
				.. describe(a) .. " is not an integer from 200 to 599"))
		end
		status, body = a, b
	end
	if body == nil then
		return core.http_respond(id, status, "")
	end
	local eok, text = pcall(json.encode, body)
	if not eok then
		return http_error(id, script_failed(route.module, what, text))
	end
	core.http_respond(id, status, text)
end

-- One job; whatever fails, the request is answered (as event_job).
local ROUTE_FAILED = '{"status":"error","statusCode":500,"message":"a script failed"}'
local function route_job(id, route, req)
	local ok, err = pcall(answer_route, id, route, req)
	if not ok then
		core.renew_budget()
		pcall(core.http_respond, id, 500, ROUTE_FAILED)
		log("error", "runtime: the request " .. req.method .. " " .. req.path .. " failed: "
			.. describe(err))
	end
end

-- An HTTP API request (the key was checked by the core).
function R.http(id, method, path, query, body)
	local route, params = match_route(method, path)
	if not route then
		if params == 405 then
			return http_error(id, 405, "method " .. method .. " not allowed on " .. path)
		end
		return http_error(id, 404, "no such route: " .. method .. " " .. path)
	end
	local data
	if body ~= nil then
		data = json.decode(body)
		if data == nil then
			return http_error(id, 400, "the body is not valid JSON")
		end
	end
	run_job(route_job, id, route, { method = method, path = path, params = params,
		query = query, body = data })
end

-- The core finished what a job waited for.
function R.resume(ticket, err)
	local co = waiting[ticket]
	if not co then
		return
	end
	waiting[ticket] = nil
	local saved = current_module
	step(co, coroutine.resume(co, err))
	current_module = saved
end

-- A round of store completions: { ticket, err or false, ... }.
function R.resume_all(list)
	for i = 1, #list, 2 do
		local err = list[i + 1]
		R.resume(list[i], err or nil)
	end
end

-- Runs a timer's callback. One the guard stopped would run past its budget
-- again at its next turn, and every turn after (the loop busy, everyone
-- else waiting): it is not run again. Its timer is cancelled if it repeats,
-- and so is every timer it set during that run (a callback that sets
-- itself again), which is logged and counted.
local function timer_job(id, t)
	local co = coroutine.running()
	local armed = {}
	armed_by[co] = armed
	local ok, err = call(t.owner, t.fn)
	armed_by[co] = nil
	if ok then
		return
	end
	script_failed(t.owner, "timer", err)
	if err ~= STOP then
		return
	end
	if timers[id] == t then
		armed[#armed + 1] = id
	end
	local cancelled = 0
	for _, a in ipairs(armed) do
		if timers[a] then
			timers[a] = nil
			core.cancel(a)
			cancelled = cancelled + 1
		end
	end
	if cancelled > 0 then
		core.limit("timer_cancelled", module_tag(t.owner) .. ": the guard stopped a timer "
			.. "callback: " .. cancelled .. " timer(s) it would run again cancelled")
	end
end

function R.timer(id)
	local t = timers[id]
	if not t then
		return
	end
	if t.every then
		core.timer(id, t.every)
	else
		timers[id] = nil
	end
	run_job(timer_job, id, t)
end

return R
