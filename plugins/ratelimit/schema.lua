-- ratelimit's settings (plugin_config.ratelimit in parley.conf.lua).
local limit = { type = "table", fields = {
	rate = { type = "number", min = 0.001, required = true }, -- events per second
	burst = { type = "number", min = 1 },                      -- default: rate, at least 1
} }
return {
	-- Per event; an event not listed falls under `default` (none: unlimited).
	events = { type = "table", values = limit, default = {
		["message:send"] = { rate = 20, burst = 40 },
		["typing:start"] = { rate = 5, burst = 10 },
		["reaction:add"] = { rate = 10, burst = 20 },
		["call:invite"] = { rate = 1, burst = 5 },
		["file:progress"] = { rate = 50, burst = 100 },
	} },
	default = limit,
	-- A socket refused this many times in a row stops being read for
	-- throttle_ms, so a flood waits in TCP instead of costing the server.
	throttle_after = { type = "integer", min = 1, default = 20 },
	throttle_ms = { type = "integer", min = 0, max = 60000, default = 1000 },
}
