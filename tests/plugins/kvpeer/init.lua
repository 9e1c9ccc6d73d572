-- kvpeer - a second plugin, to show that each plugin's key-value space is
-- its own (tests/integration/kv.test.js).
return {
	events = {
		["peer:get"] = function(sock, data)
			return { value = parley.kv.get(data.key) }
		end,
		["peer:set"] = function(sock, data)
			parley.kv.set(data.key, data.value)
			return true
		end,
	},
}
