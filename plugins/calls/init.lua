-- calls - signaling for voice, video and screen-share calls (WebRTC's offer,
-- answer and ICE candidates go through parley; the media does not):
--   call:invite {toUserId | conversationId, kind}  -> ack {callId}; every
--        device of every callee gets call:incoming {callId, kind, from,
--        conversationId}; a callee already in a call answers call:busy
--   call:accept {callId}     the caller gets call:accepted; the callee's
--        other devices get call:answered-elsewhere; other callees
--        call:ended {reason: "answered"}
--   call:reject {callId}     the caller gets call:rejected (the call ends
--        when nobody is left to answer)
--   call:end {callId}        the other party gets call:ended
--   call:offer, call:answer, call:ice-candidate {callId, ...}
--        relayed to the other party of that call only
-- A call nobody answers within ring_ms ends as call:missed; a party's
-- disconnect ends it for the other (call:ended {reason: "disconnected"}),
-- and so does the death of the node a party was on (cluster mode: the
-- node_gone hook).
-- Only the parties of a call can signal into it (403 otherwise).
--
-- The state is in the store (parley.kv), so that on several nodes
-- (docs/cluster.md) the parties may be anywhere and any node decides:
--   "c:<callId>" -> the call record, as JSON text: every change is a
--       kv.cas from the text read to the new one, so two nodes racing
--       (two devices answering at once) cannot both win;
--   "b:<userId>" -> the callId the user is in (ringing or active), taken
--       with kv.cas from absent, given back only by its call;
--   "r:<node>:<callId>" -> while a call rings, who it rings (JSON text),
--       under the caller's node: if that node dies, nobody is left to end
--       the ringing, and a survivor tells the callees from this.
-- Both expire (lease_ms) unless the node of a party refreshes them: a
-- call whose nodes all died frees its users by itself.
-- A party's socket is in the room "call:<callId>" (the caller's from the
-- invite, the callee's from the accept): what goes to "the other party" is
-- a broadcast to that room but the sender, which reaches its node.

local kv, json = parley.kv, parley.json
local KINDS = { voice = true, video = true, screen = true }
-- Changes of one record retried this often when another write came first.
local CAS_TRIES = 8

-- This node's party sockets: sid -> { id = callId, role = "caller" |
-- "callee", ring_until (the caller's, while it rings), refreshed }.
-- Node-local (parley.shared): which calls to end when a socket goes, which
-- records and busy keys this node refreshes, which rooms it leaves.
local here = parley.shared("here")

local function user_room(u)
	return "user:" .. u
end

local function to_user(u)
	return parley.to(user_room(u))
end

local function call_room(id)
	return "call:" .. id
end

-- The call record and its text, or nil (ended or unknown).
local function load_call(id)
	local text = kv.get("c:" .. id)
	if type(text) ~= "string" then
		return nil
	end
	local call = json.decode(text)
	if type(call) ~= "table" then
		return nil
	end
	return call, text
end

local function ttl_of(call)
	if call.state == "ringing" then
		return math.max(1, call.ring_until - parley.now()) + config.lease_ms
	end
	return config.lease_ms
end

-- Applies `change(call)` to the record as one step against other nodes:
-- change returns true to write the call it changed, "delete" to end it,
-- or false, status, message to give up. Returns the call as written (nil
-- once deleted) and true, or nil, false, status, message.
local function update(id, change)
	for _ = 1, CAS_TRIES do
		local call, text = load_call(id)
		if not call then
			return nil, false, 404, "no such call"
		end
		local what, status, message = change(call)
		if not what then
			return nil, false, status, message
		end
		local ok
		if what == "delete" then
			ok = kv.cas("c:" .. id, text, nil)
		else
			ok = kv.cas("c:" .. id, text, json.encode(call), ttl_of(call))
		end
		if ok then
			return call, true
		end
	end
	return nil, false, 409, "the call changed too often: try again"
end

-- An ended call's busy keys given back: before its parties are told, so
-- that what they do next finds them free.
local function free_users(call)
	kv.cas("b:" .. call.caller, call.id, nil)
	for u in pairs(call.callees) do
		kv.cas("b:" .. u, call.id, nil)
	end
end

-- An ended call's room left by this node's sockets: after they were told
-- through it. Other nodes' sockets leave when their refresh finds the call
-- gone.
local function leave_room(call)
	for _, sid in ipairs({ call.caller_sid, call.callee_sid or false }) do
		local s = sid and parley.socket(sid)
		if s then
			s:leave(call_room(call.id))
		end
		if sid and here[sid] and here[sid].id == call.id then
			here[sid] = nil
		end
	end
end

-- The ringing marker of a call rung from `node` (see the top); nil on one
-- node (no cluster: no node dies under a call while parley runs).
local function ring_key(node, id)
	return node and "r:" .. node .. ":" .. id
end

local function unmark(call)
	local key = ring_key(call.caller_node, call.id)
	if key then
		kv.delete(key)
	end
end

-- The marker outlives the ringing by the time the others take to know its
-- node dead (its liveness key's 15 s, a reap, and slack).
local RING_GRACE_MS = 30000

-- Every callee user still invited, except `but`.
local function each_callee(call, but, fn)
	for u in pairs(call.callees) do
		if u ~= but then
			fn(u)
		end
	end
end

-- Keeps the records and busy keys of this node's parties alive, and
-- forgets (leaving the room) the calls other nodes ended.
local function refresh(sid, mine, now)
	local call, text = load_call(mine.id)
	if not call then
		here[sid] = nil
		local s = parley.socket(sid)
		if s then
			s:leave(call_room(mine.id))
		end
		return
	end
	mine.refreshed = now
	kv.cas("c:" .. call.id, text, text, ttl_of(call))
	local user = mine.role == "caller" and call.caller or call.callee
	if user then
		kv.cas("b:" .. user, call.id, call.id, ttl_of(call))
	end
end

-- A call this node rang and nobody answered: the first node to delete it
-- tells (only this one rings it, so once).
local function expire(sid, mine)
	local call, ok, status = update(mine.id, function(c)
		if c.state ~= "ringing" then
			return false
		end
		return "delete"
	end)
	if not ok then
		mine.ring_until = nil
		if status == 404 then
			refresh(sid, mine, parley.now()) -- ended elsewhere: forget it
		end
		return
	end
	free_users(call)
	unmark(call)
	local missed = { callId = call.id, kind = call.kind, from = call.caller }
	to_user(call.caller):emit("call:missed", missed)
	each_callee(call, nil, function(u) to_user(u):emit("call:missed", missed) end)
	leave_room(call)
end

local sweeping = false

local function sweep()
	-- A sweep waits on the store (PostgreSQL): the next tick skips while
	-- one is still running.
	if sweeping then
		return
	end
	sweeping = true
	local ok, err = pcall(function()
		local now = parley.now()
		local due = {}
		for sid, mine in pairs(here) do
			due[#due + 1] = { sid, mine }
		end
		for _, d in ipairs(due) do
			local sid, mine = d[1], d[2]
			if here[sid] == mine then
				if mine.ring_until and mine.ring_until <= now then
					expire(sid, mine)
				elseif now - mine.refreshed >= config.lease_ms / 3 then
					refresh(sid, mine, now)
				end
			end
		end
	end)
	sweeping = false
	if not ok then
		error(err, 0)
	end
end

-- The users a call to `d` rings (not the caller), or nil, status, message.
local function callees_of(sock, d)
	if type(d.toUserId) == "string" and d.toUserId ~= "" and #d.toUserId <= 128 then
		if d.toUserId == sock.userId then
			return nil, 400, "you cannot call yourself"
		end
		return { d.toUserId }
	end
	if type(d.conversationId) ~= "string" or d.conversationId == "" or #d.conversationId > 128 then
		return nil, 400, "toUserId or conversationId is required"
	end
	local member, registered = parley.store.is_member(d.conversationId, sock.userId)
	if registered and not member then
		return nil, 403, "not a member of this conversation"
	end
	local candidates = registered and parley.store.members(d.conversationId)
		or parley.room_users("conversation:" .. d.conversationId)
	local users = {}
	for _, u in ipairs(candidates) do
		if u ~= sock.userId then
			users[#users + 1] = u
		end
	end
	if #users == 0 then
		return nil, 404, "nobody to call in this conversation"
	end
	return users
end

-- Whether the socket is a party to the call (or, while it rings, an
-- invited callee).
local function is_party(sock, call)
	return sock.id == call.caller_sid or (call.state == "active" and sock.id == call.callee_sid)
		or (call.state == "ringing" and call.callees[sock.userId] ~= nil)
end

-- The call `d.callId` if the socket is a party to it, else nil, status,
-- message.
local function party_call(sock, d)
	if type(d) ~= "table" or type(d.callId) ~= "string" or d.callId == "" or #d.callId > 64 then
		return nil, 400, "callId is required"
	end
	local call = load_call(d.callId)
	if not call then
		return nil, 404, "no such call"
	end
	if is_party(sock, call) then
		return call
	end
	return nil, 403, "not a party to this call"
end

-- For accept and reject: the call `d.callId` if the socket's user was
-- invited to it (ringing or not: the change itself says 409 when it no
-- longer rings), else nil, status, message.
local function invited_call(sock, d)
	if type(d) ~= "table" or type(d.callId) ~= "string" or d.callId == "" or #d.callId > 64 then
		return nil, 400, "callId is required"
	end
	local call = load_call(d.callId)
	if not call then
		return nil, 404, "no such call"
	end
	if call.callees[sock.userId] == nil and call.callee ~= sock.userId then
		return nil, 403, "not a party to this call"
	end
	return call
end

-- Relays a signal to the other party of the call.
local function relay(event)
	return function(sock, d)
		local call, status, message = party_call(sock, d)
		if not call then
			return nil, status, message
		end
		local out = {}
		for k, v in pairs(d) do
			out[k] = v
		end
		out.from = sock.userId
		if sock.id == call.caller_sid and call.state ~= "active" then
			each_callee(call, nil, function(u) to_user(u):emit(event, out) end)
		else
			parley.to(call_room(call.id)):except(sock):emit(event, out)
		end
		return { success = true }
	end
end

-- Ends the call a party hung up or lost, once whichever node gets there
-- first: the other party is told (while it rings, every invited device).
-- Returns the call it ended, or nil when it had ended already.
local function hang_up(sock, id, reason)
	local call, ok = update(id, function() return "delete" end)
	if not ok then
		return nil
	end
	free_users(call)
	local ended = { callId = call.id, reason = reason, by = sock.userId }
	if call.state ~= "active" then
		unmark(call)
	end
	if sock.id == call.caller_sid and call.state ~= "active" then
		each_callee(call, nil, function(u) to_user(u):emit("call:ended", ended) end)
	else
		parley.to(call_room(call.id)):except(sock):emit("call:ended", ended)
	end
	leave_room(call)
	return call
end

-- The other party of this node's party `sid` was on `node`, which died:
-- the call ends as that party's disconnect would have ended it (the record
-- deleted, the busy marks given back, then the survivor told). Once: the
-- kv.cas decides against any other end at the same moment.
local function other_gone(sid, mine, node)
	local call, ok = update(mine.id, function(c)
		if c.state ~= "active" then
			return false
		end
		if (mine.role == "caller" and c.callee_node or c.caller_node) ~= node then
			return false
		end
		return "delete"
	end)
	if not ok then
		return
	end
	free_users(call)
	local s = parley.socket(sid)
	if s then
		s:emit("call:ended", { callId = call.id, reason = "disconnected",
			by = mine.role == "caller" and call.callee or call.caller })
	end
	leave_room(call)
end

-- A call rung from `node`, which died while it rang: nobody there ends the
-- ringing (missed, or the caller's hang-up), so the first survivor to take
-- its marker does: the record deleted if still there, the busy marks given
-- back, every invited device told call:ended {reason: "disconnected"}.
local function ring_gone(node, key)
	local text = kv.get(key)
	local ring = type(text) == "string" and json.decode(text)
	if type(ring) ~= "table" or not kv.cas(key, text, nil) then
		return -- ended, or taken by another survivor
	end
	local _, ok, status = update(ring.id, function(c)
		return c.state == "ringing" and c.caller_node == node and "delete"
	end)
	if not ok and status ~= 404 then
		return -- answered meanwhile: the callee's node has the call
	end
	-- Deleted here, or expired already: nobody told the callees. (The
	-- marker has the fields free_users reads: id, caller, callees.)
	free_users(ring)
	local ended = { callId = ring.id, reason = "disconnected", by = ring.caller }
	for u in pairs(ring.callees) do
		to_user(u):emit("call:ended", ended)
	end
end

return {
	load = function()
		parley.timer(config.sweep_ms, sweep, true)
	end,

	disconnect = function(sock)
		local mine = here[sock.id]
		if not mine then
			return
		end
		here[sock.id] = nil
		local call = load_call(mine.id)
		if call and (sock.id == call.caller_sid
			or (call.state == "active" and sock.id == call.callee_sid)) then
			hang_up(sock, call.id, "disconnected")
		end
	end,

	-- Cluster mode: a node died (docs/cluster.md). Its sockets' disconnect
	-- hooks never ran: this node ends the active calls of its own parties
	-- whose other party was there, and (with every other survivor, one
	-- taking each) the calls the dead node was ringing.
	node_gone = function(node)
		for _, key in ipairs(kv.keys("r:" .. node .. ":", 1000)) do
			ring_gone(node, key)
		end
		local due = {}
		for sid, mine in pairs(here) do
			due[#due + 1] = { sid, mine }
		end
		for _, d in ipairs(due) do
			if here[d[1]] == d[2] then
				other_gone(d[1], d[2], node)
			end
		end
	end,

	events = {
		["call:invite"] = function(sock, d)
			if type(d) ~= "table" or not KINDS[d.kind] then
				return nil, 400, "kind must be voice, video or screen"
			end
			local users, status, message = callees_of(sock, d)
			if not users then
				return nil, status, message
			end
			local id = parley.crypto.base64url_encode(parley.crypto.random(12))
			local now = parley.now()
			local ttl = config.ring_ms + config.lease_ms
			-- The caller first: two invites of one user at once (two
			-- devices, two nodes) make one call.
			if not kv.cas("b:" .. sock.userId, nil, id, ttl) then
				return nil, 409, "you are already in a call"
			end
			local call = { id = id, kind = d.kind, caller = sock.userId, caller_sid = sock.id,
				caller_node = parley.settings.node_id, callees = {}, state = "ringing",
				conversationId = d.conversationId, ring_until = now + config.ring_ms }
			local free = 0
			for _, u in ipairs(users) do
				if kv.cas("b:" .. u, nil, id, ttl) then
					call.callees[u] = true
					free = free + 1
				else
					sock:emit("call:busy", { callId = id, userId = u })
				end
			end
			if free == 0 then
				kv.cas("b:" .. sock.userId, id, nil)
				return { callId = id, busy = true }
			end
			sock:join(call_room(id))
			kv.set("c:" .. id, json.encode(call), ttl_of(call))
			local key = ring_key(call.caller_node, id)
			if key then
				kv.set(key, json.encode({ id = id, caller = sock.userId, callees = call.callees }),
					config.ring_ms + config.lease_ms + RING_GRACE_MS)
			end
			here[sock.id] = { id = id, role = "caller", ring_until = call.ring_until, refreshed = now }
			local incoming = { callId = id, kind = d.kind, from = sock.user,
				conversationId = d.conversationId or parley.null }
			each_callee(call, nil, function(u) to_user(u):emit("call:incoming", incoming) end)
			return { callId = id }
		end,

		["call:accept"] = function(sock, d)
			local call, status, message = invited_call(sock, d)
			if not call then
				return nil, status, message
			end
			-- In the room before the caller can hear of it: its offer
			-- comes back to this socket through the room.
			sock:join(call_room(call.id))
			local won, ok
			won, ok, status, message = update(call.id, function(c)
				if c.state ~= "ringing" or not c.callees[sock.userId] then
					return false, 409, "the call is not ringing for you"
				end
				c.state, c.ring_until = "active", nil
				c.callee, c.callee_sid, c.callee_node = sock.userId, sock.id, parley.settings.node_id
				return true
			end)
			if not ok then
				sock:leave(call_room(call.id))
				return nil, status, message
			end
			here[sock.id] = { id = won.id, role = "callee", refreshed = parley.now() }
			unmark(won)
			parley.to(call_room(won.id)):except(sock):emit("call:accepted",
				{ callId = won.id, userId = sock.userId })
			to_user(sock.userId):except(sock):emit("call:answered-elsewhere", { callId = won.id })
			each_callee(won, sock.userId, function(u)
				kv.cas("b:" .. u, won.id, nil)
				to_user(u):emit("call:ended", { callId = won.id, reason = "answered" })
			end)
			return { success = true }
		end,

		["call:reject"] = function(sock, d)
			local call, status, message = invited_call(sock, d)
			if not call then
				return nil, status, message
			end
			local left, ok
			left, ok, status, message = update(call.id, function(c)
				if c.state ~= "ringing" or not c.callees[sock.userId] then
					return false, 409, "the call is not ringing for you"
				end
				c.callees[sock.userId] = nil
				return next(c.callees) == nil and "delete" or true
			end)
			if not ok then
				return nil, status, message
			end
			kv.cas("b:" .. sock.userId, call.id, nil)
			local over = next(left.callees) == nil
			if over then
				free_users(left)
				unmark(left)
			end
			to_user(sock.userId):except(sock):emit("call:ended", { callId = call.id, reason = "rejected" })
			parley.to(call_room(call.id)):emit("call:rejected", { callId = call.id, userId = sock.userId })
			if over then
				leave_room(left)
			end
			return { success = true }
		end,

		["call:end"] = function(sock, d)
			local call, status, message = party_call(sock, d)
			if not call then
				return nil, status, message
			end
			if not hang_up(sock, call.id, "ended") then
				return nil, 404, "no such call"
			end
			return { success = true }
		end,

		["call:offer"] = relay("call:offer"),
		["call:answer"] = relay("call:answer"),
		["call:ice-candidate"] = relay("call:ice-candidate"),
	},
}
