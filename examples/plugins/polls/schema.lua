-- The polls plugin's settings (plugin_config.polls in parley.conf.lua).
return {
	max_options = { type = "integer", min = 2, max = 50, default = 10 },
}
