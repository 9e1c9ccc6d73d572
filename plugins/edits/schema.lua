-- edits' settings (plugin_config.edits).
return {
	-- How long after sending its sender may edit or delete a message for
	-- everyone (deleting for oneself has no limit).
	window_ms = { type = "integer", min = 0, default = 15 * 60 * 1000 },
	max_content = { type = "integer", min = 1, default = 65536 },
}
