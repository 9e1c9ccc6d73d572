-- configured - a test plugin with a config schema (schema.lua beside it):
-- cfg:get returns the configuration it was given, defaults filled in.
return {
	events = {
		["cfg:get"] = function()
			return config
		end,
	},
}
