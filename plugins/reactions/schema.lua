-- reactions' settings (plugin_config.reactions).
return {
	max_emoji_bytes = { type = "integer", min = 1, max = 256, default = 64 },
}
