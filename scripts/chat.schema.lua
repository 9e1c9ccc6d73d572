-- chat's settings (plugin_config.chat in parley.conf.lua), checked before
-- chat.lua runs: a value of the wrong kind or out of range stops the load.
return {
	-- A typing:start not refreshed for this long ends with typing:stop.
	typing_ttl_ms = { type = "integer", min = 100, max = 600000, default = 8000 },
	-- How long a user whose last socket closed still counts as online, so
	-- that a quick reconnect fires neither user:offline nor user:online.
	presence_grace_ms = { type = "integer", min = 0, max = 3600000, default = 5000 },
	-- How often expired typings and graces are swept.
	sweep_ms = { type = "integer", min = 10, max = 60000, default = 250 },
}
