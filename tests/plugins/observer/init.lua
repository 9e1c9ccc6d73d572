-- observer - a test plugin that reports what a module sees of the standard
-- library, parley and the shared metatables, to show that `patcher` did
-- not change them for anyone but itself (tests/integration/isolation.test.js).
return {
	events = {
		["observe:get"] = function(sock)
			local store = parley.store
			local keys = 0
			for _ in pairs(parley.store) do
				keys = keys + 1
			end
			return {
				upper = string.upper("abc"),
				method = ("abc"):upper(),
				find = ("a.b"):find(".", 1, true),
				concat = table.concat({ "a", "b" }, "-"),
				floor = math.floor(1.5),
				now = type(parley.now()),
				encode = parley.json.encode({ 1 }),
				send = store.send == parley.store.send and type(store.send),
				storeKeys = keys,
				hasNext = next(parley) ~= nil,
				pingInterval = parley.settings.ping_interval,
				stringMeta = tostring(getmetatable("")),
				arrayPatched = parley.json.decode("[]").patched or false,
				emitted = sock:emit("observe:emitted", { ok = true }),
			}
		end,
	},
}
