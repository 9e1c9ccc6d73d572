-- The configuration the "configured" test plugin accepts.
return {
	greeting = { type = "string", default = "hello" },
	limit = { type = "integer", min = 1, max = 100, default = 10 },
	mode = { type = "string", one_of = { "fast", "safe" }, default = "safe" },
	rates = { type = "table", values = { type = "number", min = 0 }, default = {} },
	owner = { type = "table", fields = {
		name = { type = "string", required = true },
		admin = { type = "boolean", default = false },
	} },
}
