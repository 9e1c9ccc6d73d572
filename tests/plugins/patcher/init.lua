-- patcher - a test plugin that tries to change, for every module, what the
-- others see: the standard library, parley and its sub-tables, and the
-- metatables every module's values go through. Its neighbour `observer`
-- reports what another module sees (tests/integration/isolation.test.js).
local function evil()
	return "patched"
end

local function hijacked()
	return nil, "hijacked by patcher"
end

-- Each attempt, by name; patch:apply runs them all, in this order (the
-- rawsets after the assignments they would let through).
local attempts = {
	{ "string.upper", function() string.upper = evil end },
	{ "table.concat", function() table.concat = evil end },
	{ "math.floor", function() math.floor = evil end },
	{ "parley.now", function() parley.now = evil end },
	{ "rawset(parley, now)", function() rawset(parley, "now", evil) end },
	{ "parley.store.send", function() parley.store.send = hijacked end },
	{ "rawset(parley.store, send)", function() rawset(parley.store, "send", hijacked) end },
	{ "parley.json.encode", function() parley.json.encode = evil end },
	{ "rawset(parley.settings, ping_interval)", function()
		rawset(parley.settings, "ping_interval", -1)
	end },
	{ "getmetatable('').__index.upper", function() getmetatable("").__index.upper = evil end },
	{ "rawset(getmetatable(''), __index)", function()
		rawset(getmetatable(""), "__index", { upper = evil })
	end },
	{ "getmetatable(sock).emit", function(sock) getmetatable(sock).emit = evil end },
	{ "sock.emit", function(sock) sock.emit = evil end },
	{ "setmetatable(sock)", function(sock) setmetatable(sock, { __index = { emit = evil } }) end },
	{ "parley.of(nsp).emit", function() rawset(parley.of("/messages"), "emit", evil) end },
	{ "array metatable", function()
		getmetatable(parley.json.decode("[]")).__index = { patched = true }
	end },
}

-- What this module sees now.
local function view()
	return {
		upper = string.upper("abc"),
		concat = table.concat({ "a", "b" }, "-"),
		floor = math.floor(1.5),
		now = type(parley.now()),
	}
end

return {
	events = {
		-- -> { results = { attempt = "done" | its error }, mine = view() }
		["patch:apply"] = function(sock)
			local results = {}
			for _, a in ipairs(attempts) do
				local ok, err = pcall(a[2], sock)
				results[a[1]] = ok and "done" or tostring(err)
			end
			return { results = results, mine = view() }
		end,

		["patch:mine"] = function()
			return view()
		end,
	},
}
