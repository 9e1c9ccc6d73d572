-- calls' settings (plugin_config.calls).
return {
	ring_ms = { type = "integer", min = 1000, max = 300000, default = 30000 },
	sweep_ms = { type = "integer", min = 10, max = 10000, default = 500 },
}
