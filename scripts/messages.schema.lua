-- messages' settings (plugin_config.messages in parley.conf.lua), checked
-- before messages.lua runs.
return {
	-- The largest `content` of a message, in bytes of its JSON.
	max_content = { type = "integer", min = 1, max = 104857600, default = 65536 },
	-- Whose presence presence:query answers about: "shared" (the users who
	-- share a conversation with the asker) or "everyone".
	presence_query = { type = "string", one_of = { "shared", "everyone" }, default = "shared" },
}
