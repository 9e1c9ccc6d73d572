-- reference.lua - the server the official Socket.IO protocol suite expects
-- (its README): anyone connects, to "/" or "/custom"; on connect the socket
-- is told "auth" with its handshake's auth payload ({} when none); "message"
-- comes back as "message-back" with every argument, and "message-with-ack"
-- is acked with every argument.

local function everything(sock, ...)
	return ...
end

return {
	namespaces = { "/", "/custom" },

	connect = function(sock, hs)
		return { userId = sock.id }
	end,

	connected = function(sock)
		sock:emit("auth", sock.handshake.auth or parley.json.raw("{}"))
	end,

	events = {
		["message"] = function(sock, ...)
			sock:emit("message-back", ...)
		end,
		["message-with-ack"] = everything,
	},
}
