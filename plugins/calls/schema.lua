-- calls' settings (plugin_config.calls).
return {
	ring_ms = { type = "integer", min = 1000, max = 300000, default = 30000 },
	-- how often this node looks at its calls: the ones it rang that nobody
	-- answered in ring_ms, the ones it refreshes
	sweep_ms = { type = "integer", min = 10, max = 10000, default = 500 },
	-- a call's record and its users' busy marks expire this long after the
	-- last refresh by a party's node (every lease_ms / 3): a call whose
	-- nodes all died frees its users by itself
	lease_ms = { type = "integer", min = 3000, max = 3600000, default = 60000 },
}
