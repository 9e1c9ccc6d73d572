-- runtime/sockets.lua - binary values, and the socket tables scripts get
-- (emit, join, request, ...).
-- A part of the runtime (the Lua half of parley's seam, embedded in the
-- binary; core/lua/script.c runs the parts in order): each gets the C host
-- API `core` and the context `C` the parts share, and adds to it what later
-- parts use.
local core, C = ...
local json, log, module_tag, call = C.json, C.log, C.module_tag, C.call
local script_failed, refused = C.script_failed, C.refused

-- ---- binary values (core/lua/binary.lua) ----

local binary = core.binary.binary
local is_binary = core.binary.is_binary
local encode_args = core.binary.encode_args
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

-- Whether the socket came back by connection state recovery (the core's
-- R.resume sets it): false for the others, at no cost in their tables.
function lazy.recovered()
	return false
end

-- When the socket connected, in ms since the epoch.
function lazy.connectedAt(sock)
	return core.connected_at(sock.id)
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

-- Emits the event with every argument after it to the rooms (every socket
-- of the namespace when none was named). Returns the number of sockets
-- reached.
function Broadcast:emit(event, ...)
	local rooms = #self > 0 and self or nil
	return core.broadcast(self.nsp, rooms, self.except_sids, self.except_rooms,
		event, encode_args(...))
end

-- Emits the event with every argument after it.
function Socket:emit(event, ...)
	return core.emit(self.id, event, encode_args(...))
end

-- sock:request(event, ..., timeout_ms, cb): emits the event with the
-- arguments between, and waits for the client's ack: cb(err, ...) with err
-- nil, or "timeout" / "disconnected" / "invalid". timeout_ms nil is 5000.
-- (The last two are always the timeout and the callback: a request whose
-- last argument is a number says so with a nil timeout.)
function Socket:request(event, ...)
	local n = select("#", ...)
	local args = { ... }
	local timeout_ms, cb = args[n - 1], args[n]
	if n < 2 or type(cb) ~= "function" then
		return nil, "usage: sock:request(event, ..., timeout_ms, cb)"
	end
	local id = core.request(self.id, event, timeout_ms or 5000,
		encode_args(unpack(args, 1, n - 2)))
	if not id then
		return nil, "socket is gone"
	end
	self.pending = self.pending or {}
	self.pending[id] = { cb = cb, owner = C.current_module }
	return id
end

-- Joins a room after every join hook agreed; returns true or nil, err.
function Socket:join(room)
	if type(room) ~= "string" or room == "" then
		return nil, "room must be a non-empty string"
	end
	for _, h in ipairs(C.reg.join) do
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
	-- Cluster mode: a room new to this node is followed in Redis once Redis
	-- has answered the subscription; until then another node's broadcast
	-- into it would pass this node by. A job waits for that, so that what
	-- it answers (a join's ack) comes after it. (A connect hook cannot
	-- wait: the user's own room is joined before the loop runs again.)
	if ok and core.subscribed and coroutine.running() then
		C.settle("join", "read", core.subscribed())
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
	C.throttle(self, ms)
end

function Socket:disconnect()
	return core.disconnect(self.id)
end

-- Logs with the module and the socket in the line:
-- "chat: socket Xy (user-1): text".
function Socket:log(level, fmt, ...)
	local msg = select("#", ...) > 0 and string.format(fmt, ...) or tostring(fmt)
	log(level, module_tag(C.current_module) .. ": socket " .. self.id .. " ("
		.. tostring(self.userId) .. "): " .. msg, self)
end

function Socket:error(status, message, ack)
	core.error(self.id, status, message, ack)
end

-- For the parts after this one.
C.binary = binary
C.is_binary = is_binary
C.encode_args = encode_args
C.decode_args = decode_args
C.resolve_args = resolve_args
C.Socket = Socket
C.handshake_table = handshake_table
C.connecting = connecting
C.profile_of = profile_of
C.broadcast_new = broadcast_new
