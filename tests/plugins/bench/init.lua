-- bench - the fan-out event the benchmarks drive, implemented the same way
-- in the Node Socket.IO reference (tests/bench/reference/server.js):
--   bench:send {conversationId, ...} -> "bench:recv" with the same payload
--   to everyone else in conversation:{id}, and an ack of true.
--   bench:noop -> an ack of true and nothing else: the least an event can
--   cost, against which the default scripts' cost is measured
--   (tests/bench/lua-cost.sh).
-- Enabled only for benchmarks: PARLEY_PLUGIN_PATH=tests/plugins PARLEY_PLUGINS=bench

return {
	events = {
		["bench:noop"] = function()
			return true
		end,

		["bench:send"] = function(sock, data)
			if type(data) ~= "table" or type(data.conversationId) ~= "string" then
				return nil, 400, "conversationId is required"
			end
			sock:to("conversation:" .. data.conversationId):emit("bench:recv", data)
			return true
		end,
	},
}
