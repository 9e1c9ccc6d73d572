-- chat.lua - the seed's events that need no storage: joining and leaving a
-- conversation's room, typing indicators (with the user, and expiry when not
-- refreshed), and presence when a user's first socket connects and after
-- the last one closes.

local TYPING_TTL_MS = 8000
local NAMESPACE = "/messages"

local typing = {} -- "conversationId\0userId" -> timer

local function room_of(conversation_id)
	return "conversation:" .. conversation_id
end

local function stop_typing(sock, conversation_id, key)
	local t = typing[key]
	if t then
		parley.cancel(t)
		typing[key] = nil
	end
	sock:to(room_of(conversation_id)):emit("typing:stop", {
		conversationId = conversation_id, userId = sock.userId, isTyping = false,
	})
end

return {
	namespaces = { NAMESPACE },

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
				local conv, user = key:match("^(.*)%z(.*)$")
				if user == sock.userId then
					parley.cancel(t)
					typing[key] = nil
					parley.of(sock.namespace):to(room_of(conv)):emit("typing:stop", {
						conversationId = conv, userId = user, isTyping = false,
					})
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
			local key = conv .. "\0" .. sock.userId
			if typing[key] then
				parley.cancel(typing[key])
			end
			typing[key] = parley.timer(TYPING_TTL_MS, function()
				typing[key] = nil
				parley.of(sock.namespace):to(room_of(conv)):except(sock):emit("typing:stop", {
					conversationId = conv, userId = sock.userId, isTyping = false,
				})
			end)
			sock:to(room_of(conv)):emit("typing:start", {
				conversationId = conv, userId = sock.userId, isTyping = true,
				user = { id = sock.user.id, name = sock.user.name, avatar = sock.user.avatar },
			})
			return { success = true }
		end,

		["typing:stop"] = function(sock, data)
			stop_typing(sock, data.conversationId, data.conversationId .. "\0" .. sock.userId)
			return { success = true }
		end,
	},
}
