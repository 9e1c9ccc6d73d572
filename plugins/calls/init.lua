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
-- disconnect ends it for the other (call:ended {reason: "disconnected"}).
-- Only the parties of a call can signal into it (403 otherwise). Calls are
-- shared state: a reload keeps them.

local store = parley.store
local KINDS = { voice = true, video = true, screen = true }

-- callId -> { id, kind, caller, caller_sid, callees = {user = true},
--             state = "ringing"|"active", callee, callee_sid, conversationId,
--             ring_until }
local calls = parley.shared("calls")
-- userId -> callId: who is in a call (ringing or active)
local busy = parley.shared("busy")

local function user_room(u)
	return "user:" .. u
end

local function to_user(u)
	return parley.to(user_room(u))
end

local function end_call(call, notify)
	calls[call.id] = nil
	if busy[call.caller] == call.id then
		busy[call.caller] = nil
	end
	for u in pairs(call.callees) do
		if busy[u] == call.id then
			busy[u] = nil
		end
	end
	if notify then
		notify()
	end
end

-- Every callee user still invited, except `but`.
local function each_callee(call, but, fn)
	for u in pairs(call.callees) do
		if u ~= but then
			fn(u)
		end
	end
end

local function sweep()
	local now = parley.now()
	for _, call in pairs(calls) do
		if call.state == "ringing" and call.ring_until <= now then
			end_call(call, function()
				local missed = { callId = call.id, kind = call.kind, from = call.caller }
				to_user(call.caller):emit("call:missed", missed)
				each_callee(call, nil, function(u) to_user(u):emit("call:missed", missed) end)
			end)
		end
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
	local member, registered = store.is_member(d.conversationId, sock.userId)
	if registered and not member then
		return nil, 403, "not a member of this conversation"
	end
	local candidates = registered and store.members(d.conversationId)
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

-- The call `d.callId` if the socket is a party to it (or, for accept and
-- reject, an invited callee), else nil, status, message.
local function party_call(sock, d)
	if type(d) ~= "table" or type(d.callId) ~= "string" then
		return nil, 400, "callId is required"
	end
	local call = calls[d.callId]
	if not call then
		return nil, 404, "no such call"
	end
	if sock.id == call.caller_sid or (call.state == "active" and sock.id == call.callee_sid)
		or (call.state == "ringing" and call.callees[sock.userId]) then
		return call
	end
	return nil, 403, "not a party to this call"
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
		if sock.id == call.caller_sid then
			if call.state == "active" then
				local s = parley.socket(call.callee_sid)
				if s then
					s:emit(event, out)
				end
			else
				each_callee(call, nil, function(u) to_user(u):emit(event, out) end)
			end
		else
			local s = parley.socket(call.caller_sid)
			if s then
				s:emit(event, out)
			end
		end
		return { success = true }
	end
end

return {
	load = function()
		parley.timer(config.sweep_ms, sweep, true)
	end,

	disconnect = function(sock)
		for _, call in pairs(calls) do
			if sock.id == call.caller_sid then
				end_call(call, function()
					local ended = { callId = call.id, reason = "disconnected", by = sock.userId }
					if call.state == "active" then
						local s = parley.socket(call.callee_sid)
						if s then s:emit("call:ended", ended) end
					else
						each_callee(call, nil, function(u) to_user(u):emit("call:ended", ended) end)
					end
				end)
			elseif call.state == "active" and sock.id == call.callee_sid then
				end_call(call, function()
					local s = parley.socket(call.caller_sid)
					if s then
						s:emit("call:ended", { callId = call.id, reason = "disconnected", by = sock.userId })
					end
				end)
			end
		end
	end,

	events = {
		["call:invite"] = function(sock, d)
			if type(d) ~= "table" or not KINDS[d.kind] then
				return nil, 400, "kind must be voice, video or screen"
			end
			if busy[sock.userId] then
				return nil, 409, "you are already in a call"
			end
			local users, status, message = callees_of(sock, d)
			if not users then
				return nil, status, message
			end
			local id = parley.crypto.base64url_encode(parley.crypto.random(12))
			local call = { id = id, kind = d.kind, caller = sock.userId, caller_sid = sock.id,
				callees = {}, state = "ringing", conversationId = d.conversationId,
				ring_until = parley.now() + config.ring_ms }
			local free = 0
			for _, u in ipairs(users) do
				if busy[u] then
					sock:emit("call:busy", { callId = id, userId = u })
				else
					call.callees[u] = true
					free = free + 1
				end
			end
			if free == 0 then
				return { callId = id, busy = true }
			end
			calls[id] = call
			busy[sock.userId] = id
			local incoming = { callId = id, kind = d.kind, from = sock.user,
				conversationId = d.conversationId or parley.null }
			each_callee(call, nil, function(u)
				busy[u] = id
				to_user(u):emit("call:incoming", incoming)
			end)
			return { callId = id }
		end,

		["call:accept"] = function(sock, d)
			local call, status, message = party_call(sock, d)
			if not call then
				return nil, status, message
			end
			if call.state ~= "ringing" or not call.callees[sock.userId] then
				return nil, 409, "the call is not ringing for you"
			end
			call.state = "active"
			call.callee = sock.userId
			call.callee_sid = sock.id
			local caller = parley.socket(call.caller_sid)
			if caller then
				caller:emit("call:accepted", { callId = call.id, userId = sock.userId })
			end
			to_user(sock.userId):except(sock):emit("call:answered-elsewhere", { callId = call.id })
			each_callee(call, sock.userId, function(u)
				busy[u] = nil
				call.callees[u] = nil
				to_user(u):emit("call:ended", { callId = call.id, reason = "answered" })
			end)
			return { success = true }
		end,

		["call:reject"] = function(sock, d)
			local call, status, message = party_call(sock, d)
			if not call then
				return nil, status, message
			end
			if call.state ~= "ringing" or not call.callees[sock.userId] then
				return nil, 409, "the call is not ringing for you"
			end
			call.callees[sock.userId] = nil
			busy[sock.userId] = nil
			to_user(sock.userId):except(sock):emit("call:ended", { callId = call.id, reason = "rejected" })
			local caller = parley.socket(call.caller_sid)
			if caller then
				caller:emit("call:rejected", { callId = call.id, userId = sock.userId })
			end
			if next(call.callees) == nil then
				end_call(call)
			end
			return { success = true }
		end,

		["call:end"] = function(sock, d)
			local call, status, message = party_call(sock, d)
			if not call then
				return nil, status, message
			end
			end_call(call, function()
				local ended = { callId = call.id, reason = "ended", by = sock.userId }
				if sock.id == call.caller_sid then
					if call.state == "active" then
						local s = parley.socket(call.callee_sid)
						if s then s:emit("call:ended", ended) end
					else
						each_callee(call, nil, function(u) to_user(u):emit("call:ended", ended) end)
					end
				else
					local s = parley.socket(call.caller_sid)
					if s then s:emit("call:ended", ended) end
				end
			end)
			return { success = true }
		end,

		["call:offer"] = relay("call:offer"),
		["call:answer"] = relay("call:answer"),
		["call:ice-candidate"] = relay("call:ice-candidate"),
	},
}
