-- parley.conf.lua - parley's settings (`parley --help` lists every one; the
-- README's "Settings" says what each does). Lua run as data: it returns one
-- table. The environment wins over this file: keep secrets out of it and in
-- the environment (/etc/default/parley under systemd: JWT_SECRET=...,
-- PARLEY_API_KEY=...). SIGHUP (systemctl reload parley) reads it again:
-- plugins, plugin_config and log take effect at once; the rest at a restart.
return {
	-- The port parley listens on; put nginx or HAProxy in front for TLS
	-- (docs/deploy.md).
	port = 3000,

	-- The database (LMDB) and its size limit: a full store answers 507 and
	-- loses nothing. Under systemd, PARLEY_DATA_DIR in the unit wins.
	data_dir = "/var/lib/parley/data",
	map_size = "4GiB",

	-- The origins your web app is served from (CORS and WebSocket
	-- upgrades), comma-separated. Unset, any origin may connect: set it.
	-- frontend_url = "https://chat.example.com",

	-- Optional features (see the plugins folder): e.g. { "reactions", "edits" }.
	plugins = { },

	-- Settings of each enabled plugin and of the default scripts, checked
	-- against their schemas (an unknown key is refused).
	plugin_config = {
		chat = { presence_grace_ms = 5000 },
		messages = { presence_query = "shared" },
	},

	-- error, warn, info or debug.
	log = "info",
}
