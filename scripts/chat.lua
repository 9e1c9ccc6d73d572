-- chat.lua - the seed's events that need no storage: joining and leaving a
-- conversation's room, typing indicators (with the user, and expiry when not
-- refreshed), and presence when a user's first socket connects and after
-- the last one closes.
--
-- Who is typing is shared state (parley.shared), so a reload of this script
-- takes it over; a sweep every second ends what was not refreshed in time.

local TYPING_TTL_MS = tonumber(config.typing_ttl_ms) or 8000
local SWEEP_MS = 1000
local NAMESPACE = "/messages"

-- "conversationId\0userId" -> { expires, conv, user, sid }
local typing = parley.shared("typing")

local function room_of(conversation_id)
	return "conversation:" .. conversation_id
end

-- Tells the room a typing indicator ended; the typer's socket is spared.
local function end_typing(key)
	local t = typing[key]
	if not t then
		return
	end
	typing[key] = nil
	local b = parley.of(NAMESPACE):to(room_of(t.conv))
	local typer = parley.socket(t.sid)
	if typer then
		b:except(typer)
	end
	b:emit("typing:stop", { conversationId = t.conv, userId = t.user, isTyping = false })
end

local function sweep()
	local now = parley.now()
	for key, t in pairs(typing) do
		if t.expires <= now then
			end_typing(key)
		end
	end
end

return {
	namespaces = { NAMESPACE },

	load = function()
		parley.timer(SWEEP_MS, sweep, true)
	end,

	connected = function(sock)
		if sock.namespace ~= NAMESPACE then
			return
		end
		if parley.user_sockets(sock.userId, sock.namespace) == 1 then
			parley.of(sock.namespace):emit("user:online", { userId = sock.userId })
		end
	end,

	disconnect = function(sock)
		if sock.namespace ~= NAMESPACE then
			return
		end
		-- The socket is still counted while its disconnect hooks run.
		if parley.user_sockets(sock.userId, sock.namespace) == 1 then
			for key, t in pairs(typing) do
				if t.user == sock.userId then
					end_typing(key)
				end
			end
			parley.of(sock.namespace):emit("user:offline", { userId = sock.userId })
		end
	end,

	events = {
		["conversation:join"] = function(sock, data)
			local ok, err = sock:join(room_of(data.conversationId))
			if not ok then
				return nil, err.status or 403, err.message or tostring(err)
			end
			local reply = { conversationId = data.conversationId, success = true }
			sock:emit("conversation:joined", reply)
			return reply
		end,

		["conversation:leave"] = function(sock, data)
			sock:leave(room_of(data.conversationId))
			local reply = { conversationId = data.conversationId, success = true }
			sock:emit("conversation:left", reply)
			return reply
		end,

		["typing:start"] = function(sock, data)
			local conv = data.conversationId
			typing[conv .. "\0" .. sock.userId] = {
				expires = parley.now() + TYPING_TTL_MS, conv = conv, user = sock.userId,
				sid = sock.id,
			}
			sock:to(room_of(conv)):emit("typing:start", {
				conversationId = conv, userId = sock.userId, isTyping = true,
				user = { id = sock.user.id, name = sock.user.name, avatar = sock.user.avatar },
			})
			return { success = true }
		end,

		["typing:stop"] = function(sock, data)
			local conv = data.conversationId
			typing[conv .. "\0" .. sock.userId] = nil
			sock:to(room_of(conv)):emit("typing:stop", {
				conversationId = conv, userId = sock.userId, isTyping = false,
			})
			return { success = true }
		end,
	},
}
