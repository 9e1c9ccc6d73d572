-- order_c - one of three test plugins (order_a, order_b, order_c) that show
-- the order in which the hooks of several modules run: priority (higher
-- first), then configuration order (tests/integration/plugins.test.js).
-- Each hook says it ran by emitting "order:ran" to the socket.
return {
	priority = 0,

	connected = function(sock)
		sock:emit("order:ran", "connected:c")
	end,

	filter = function(sock, event)
		if event == "order:probe" then
			sock:emit("order:ran", "filter:c")
		end
	end,

	events = {
		-- The first module to return a value gives the ack.
		["order:probe"] = function(sock)
			sock:emit("order:ran", "event:c")
			return "c"
		end,
	},
}
