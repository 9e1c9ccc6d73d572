-- admin.lua - the operator's routes, behind the API key like every /api
-- route: a user's sockets, disconnecting a user (the reason told to each
-- socket), taking a user out of a room, emitting to a room. Rooms and ids
-- arrive URL-encoded in the path ("conversation%3Ac1"), which the gateway
-- decodes (and refuses when not UTF-8); every namespace the modules serve
-- is searched.

local json = parley.json
local MAX_ID = 128
local MAX_REASON = 200
local MAX_EVENT = 128
-- Names socket.io-client keeps for itself: an emit of one would be taken
-- for the client's own.
local RESERVED = {
	connect = true, connect_error = true, disconnect = true, disconnecting = true,
	newListener = true, removeListener = true,
}

-- A path parameter as an id: the gateway has decoded it already (%3A is
-- ":"; a room whose name holds "/" cannot be named in a path). nil, err
-- for what cannot be one.
local function segment(v, what)
	if type(v) ~= "string" or v == "" then
		return nil, what .. " is required"
	end
	if #v > MAX_ID then
		return nil, what .. " is longer than " .. MAX_ID .. " characters"
	end
	if v:find("\0", 1, true) then
		return nil, what .. " must not contain NUL"
	end
	return v
end

-- The body as an object (an absent body is an empty one).
local function object(body)
	if body == nil then
		return {}
	end
	if type(body) ~= "table" or json.is_array(body) then
		return nil, "the body must be a JSON object"
	end
	return body
end

-- The room of a /api/rooms/:room/... route and its body; or nil, nil, why.
local function room_and_body(req)
	local room, err = segment(req.params.room, "the room")
	if not room then
		return nil, nil, err
	end
	local d, berr = object(req.body)
	if not d then
		return nil, nil, berr
	end
	return room, d
end

-- The sockets of a user, in every namespace: { {id, sock}, ... }.
local function sockets_of(user)
	local list = {}
	for _, nsp in ipairs(parley.namespaces()) do
		for _, id in ipairs(parley.room_sockets("user:" .. user, nsp)) do
			local s = parley.socket(id)
			if s then
				list[#list + 1] = s
			end
		end
	end
	return list
end

return {
	routes = {
		-- Each socket of the user: namespace, transport, address, connect
		-- time (ms since the epoch) and rooms.
		["GET /api/users/:id/sockets"] = function(req)
			local user, err = segment(req.params.id, "the user id")
			if not user then
				return nil, 400, err
			end
			local list = json.array({})
			for _, s in ipairs(sockets_of(user)) do
				list[#list + 1] = { id = s.id, namespace = s.namespace, transport = s.transport,
					address = s.handshake.address, connectedAt = s.connectedAt,
					rooms = s:rooms() }
			end
			return { userId = user, sockets = list }
		end,

		-- Disconnects every socket of the user; each is first sent an
		-- error event (410) whose message carries the reason.
		["POST /api/users/:id/disconnect"] = function(req)
			local user, err = segment(req.params.id, "the user id")
			if not user then
				return nil, 400, err
			end
			local d, berr = object(req.body)
			if not d then
				return nil, 400, berr
			end
			local reason = d.reason
			if reason == nil then
				reason = "disconnected by an administrator"
			elseif type(reason) ~= "string" or reason == "" or #reason > MAX_REASON then
				return nil, 400, "reason must be a non-empty string of at most " .. MAX_REASON
					.. " bytes"
			end
			local list = sockets_of(user)
			for _, s in ipairs(list) do
				s:error(410, "disconnected by the server: " .. reason)
				s:disconnect()
			end
			parley.log.info("user %s disconnected by the API (%d socket(s)): %s", user, #list,
				reason)
			return { userId = user, disconnected = #list }
		end,

		-- Takes every socket of userId out of the room.
		["POST /api/rooms/:room/leave"] = function(req)
			local room, d, err = room_and_body(req)
			if not room then
				return nil, 400, err
			end
			local user, uerr = segment(d.userId, "userId")
			if not user then
				return nil, 400, uerr
			end
			local left = 0
			for _, s in ipairs(sockets_of(user)) do
				if s:in_room(room) then
					s:leave(room)
					left = left + 1
				end
			end
			return { room = room, userId = user, left = left }
		end,

		-- Emits event(data) to the room, in every namespace that has it.
		["POST /api/rooms/:room/emit"] = function(req)
			local room, d, err = room_and_body(req)
			if not room then
				return nil, 400, err
			end
			local event = d.event
			if type(event) ~= "string" or event == "" or #event > MAX_EVENT then
				return nil, 400, "event must be a non-empty string of at most " .. MAX_EVENT
					.. " bytes"
			end
			if RESERVED[event] then
				return nil, 400, "event " .. event .. " is reserved by Socket.IO"
			end
			local sockets = 0
			for _, nsp in ipairs(parley.namespaces()) do
				local n = parley.room_size(room, nsp)
				if n > 0 then
					if d.data == nil then
						parley.of(nsp):to(room):emit(event)
					else
						parley.of(nsp):to(room):emit(event, d.data)
					end
					sockets = sockets + n
				end
			end
			return { room = room, event = event, sockets = sockets }
		end,
	},
}
