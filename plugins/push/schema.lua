-- push's settings (plugin_config.push). url and secret fall back to
-- PARLEY_PUSH_URL and PARLEY_PUSH_SECRET; without either, parley does not
-- start.
return {
	url = { type = "string" },
	secret = { type = "string" },
	-- characters of a text message's content in `preview`
	preview_chars = { type = "integer", min = 0, max = 1000, default = 100 },
	-- a message's push waits this long for more to the same user: one push
	-- then tells of them all (`count`)
	collapse_ms = { type = "integer", min = 0, max = 600000, default = 1000 },
	-- retries: at most max_attempts tries, none after max_age_ms; the wait
	-- before the n-th retry is backoff_ms * 2^(n-1) (at most max_backoff_ms),
	-- between half of it and all of it (jitter)
	max_attempts = { type = "integer", min = 1, max = 100, default = 8 },
	max_age_ms = { type = "integer", min = 1000, max = 2592000000, default = 86400000 },
	backoff_ms = { type = "integer", min = 10, max = 3600000, default = 1000 },
	max_backoff_ms = { type = "integer", min = 10, max = 86400000, default = 300000 },
	-- one POST's own timeout
	timeout_ms = { type = "integer", min = 100, max = 600000, default = 5000 },
	-- deliveries kept at most; past it the oldest is dropped (counted)
	max_outbox = { type = "integer", min = 1, max = 1000000, default = 10000 },
	-- POSTs in flight at once, and how often the outbox is looked at
	concurrency = { type = "integer", min = 1, max = 64, default = 8 },
	tick_ms = { type = "integer", min = 10, max = 10000, default = 100 },
	-- push call:invite to callees with no socket (false without the calls plugin)
	calls = { type = "boolean", default = true },
}
