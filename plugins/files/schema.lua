-- files' settings (plugin_config.files).
return {
	-- At most one relay per transfer this often (the last one always goes).
	interval_ms = { type = "integer", min = 0, max = 60000, default = 250 },
}
