-- order_b - one of three test plugins (order_a, order_b, order_c) that show
-- the order in which the hooks of several modules run: priority (higher
-- first), then configuration order (tests/integration/plugins.test.js).
-- Each hook says it ran by emitting "order:ran" to the socket.
return {
	priority = 10,

	connected = function(sock)
		sock:emit("order:ran", "connected:b")
	end,

	filter = function(sock, event)
		if event == "order:probe" then
			sock:emit("order:ran", "filter:b")
		end
	end,

	events = {
		-- The first module to return a value gives the ack.
		["order:probe"] = function(sock)
			sock:emit("order:ran", "event:b")
			return "b"
		end,
	},
}
