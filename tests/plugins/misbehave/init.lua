-- misbehave - a plugin that gets its answers wrong in every shape a script
-- can, for tests/integration/outcomes.test.js: each outcome of a handler, a
-- filter, a route or a connect hook must still end in an answer. Timers that
-- run away or spin the loop (tests/integration/timers.test.js), and host
-- functions whose result the memory budget refuses (budget.test.js).
-- Enabled only in tests:
--   PARLEY_PLUGIN_PATH=tests/plugins PARLEY_PLUGINS=testkit,misbehave

-- Values whose metamethods are a trap for whoever calls them.
local function spin()
	while true do end
end
local loops = {
	__tostring = spin, __index = spin, __newindex = spin, __len = spin, __eq = spin,
	__concat = spin, __lt = spin, __le = spin, __call = spin,
}
local throws = { __tostring = function() error("__tostring throws") end }
local function looping()
	return setmetatable({}, loops)
end

-- Every wrong (or odd) way to answer, by name: a handler, a filter and a
-- route each answer the same way (`shape` is given the event's data).
local shapes = {
	["nil-err"] = function() return nil, "not allowed" end,
	["nil-err-after-wait"] = function()
		parley.kv.wait()
		return nil, "not allowed"
	end,
	["string-status"] = function() return nil, "abc", "x" end,
	["fractional-status"] = function() return nil, 404.5, "x" end,
	["status-out-of-range"] = function() return nil, 99999, "x" end,
	["status-nan"] = function() return nil, 0 / 0, "x" end,
	["status-table"] = function() return nil, looping(), "x" end,
	["throw-looping-tostring"] = function() error(looping()) end,
	["throw-throwing-tostring"] = function() error(setmetatable({}, throws)) end,
	["message-looping-tostring"] = function() return nil, 500, looping() end,
	["refuse-403-looping-message"] = function() return nil, 403, looping() end,
	["message-table-with-function"] = function() return nil, 400, { f = print } end,
	["message-not-utf8"] = function() return nil, 400, "bad \255 byte" end,
	-- 2,401 bytes, "x" then two-byte characters: the core sends 1,024 bytes
	-- of a message, which would end in the middle of one.
	["message-long"] = function() return nil, 400, "x" .. string.rep("\195\169", 1200) end,
	["message-number"] = function() return nil, 409, 42 end,
	-- A result whose metamethods loop: the runtime reads it raw.
	["result-looping-metatable"] = function()
		return setmetatable({ ok = true }, loops)
	end,
}

local events = {}
for name, shape in pairs(shapes) do
	events["misbehave:" .. name] = function(sock, data)
		return shape(data)
	end
	-- The filter answers for these; the handler never runs.
	events["misbehave:filter:" .. name] = function()
		return { handler = true }
	end
end

-- Timers (tests/integration/timers.test.js). Counters live in a shared
-- table, which misbehave:runs-after reports.
local runs = parley.shared("runs")

-- A repeating timer whose callback counts its run, then spins.
events["misbehave:spin-every"] = function(sock, data)
	runs.spin_every = 0
	parley.timer(data.ms, function()
		runs.spin_every = runs.spin_every + 1
		spin()
	end, true)
	return true
end

-- A one-shot timer that sets itself again, then spins (and sets a second,
-- harmless, timer first: it goes with the stopped run).
events["misbehave:spin-chain"] = function(sock, data)
	runs.spin_chain, runs.bystander_timer = 0, 0
	local function tick()
		runs.spin_chain = runs.spin_chain + 1
		parley.timer(data.ms, tick)
		parley.timer(data.ms, function() runs.bystander_timer = runs.bystander_timer + 1 end)
		spin()
	end
	parley.timer(data.ms, tick)
	return true
end

-- After `ms`, emits the counters to the socket as misbehave:runs: what ran
-- before a timer set now came due.
events["misbehave:runs-after"] = function(sock, data)
	parley.timer(data.ms, function()
		sock:emit("misbehave:runs", runs)
	end)
	return true
end

-- A 0 ms repeating timer, and a one-shot 0 ms timer that sets itself again,
-- each counting its runs; after `ms` both stop and the counts go to the
-- socket as misbehave:zero.
events["misbehave:zero"] = function(sock, data)
	local every, chain, stop = 0, 0, false
	local t = parley.timer(0, function() every = every + 1 end, true)
	local function tick()
		chain = chain + 1
		if not stop then
			parley.timer(0, tick)
		end
	end
	parley.timer(0, tick)
	parley.timer(data.ms, function()
		stop = true
		parley.cancel(t)
		sock:emit("misbehave:zero", { every = every, chain = chain })
	end)
	return true
end

-- Host functions that build their result in C memory, then find that the
-- memory budget (PARLEY_SCRIPT_MEMORY at 1 MiB in budget.test.js) refuses
-- the Lua value it becomes. Each is called under pcall, so that the answer
-- says the refusal came from inside it: {refused, err}.
local function refused(f, ...)
	-- Made first: once the call failed, the budget is spent (its garbage
	-- not yet collected), and the answer's fields must not allocate.
	local answer = { refused = false, err = parley.null }
	local ok, err = pcall(f, ...)
	answer.refused = not ok
	if not ok then
		answer.err = err
	end
	return answer
end

events["misbehave:encode-big"] = function()
	local piece, t = string.rep("x", 64 * 1024), {}
	for i = 1, 1000 do
		t[i] = piece
	end
	return refused(parley.json.encode, t) -- 64 MB of text
end

-- data: the text to encode, from the client (1.5 MB in budget.test.js).
-- Made here with string.rep, the input took twice its size for a while
-- (LuaJIT's temporary buffer), and whether the result was refused depended
-- on how much garbage the collector freed during the call.
events["misbehave:base64-big"] = function(sock, data)
	return refused(parley.crypto.base64_encode, data)
end

events["misbehave:send-big"] = function(sock)
	local piece, content = string.rep("x", 64 * 1024), {}
	for i = 1, 64 do
		content[i] = piece
	end
	return refused(parley.store.send, { conversationId = "big", senderId = sock.userId,
		type = "document", content = content, recipients = {} }) -- 4 MB
end

-- {from, n}: keys key-<from>..key-<from+n-1> in this module's key space, on
-- disk.
events["misbehave:kv-fill"] = function(sock, data)
	for i = data.from, data.from + data.n - 1 do
		parley.kv.set(string.format("key-%06d", i), true)
	end
	return parley.kv.wait()
end

events["misbehave:kv-keys"] = function(sock, data)
	if data.limit <= 1000 then
		return #parley.kv.keys("key-", data.limit)
	end
	return refused(parley.kv.keys, "key-", data.limit)
end

return {
	priority = 200,
	events = events,

	filter = function(sock, event, data)
		local name = event:match("^misbehave:filter:(.*)$")
		if name then
			return shapes[name](data)
		end
	end,

	-- GET /api/misbehave/<shape>; and route-only shapes.
	routes = {
		["GET /api/misbehave/:shape"] = function(req)
			local shape = shapes[req.params.shape]
			if shape then
				return shape(req.query)
			end
			if req.params.shape == "status-999" then
				return 999, { odd = true }
			end
			if req.params.shape == "status-fraction" then
				return 200.5, { odd = true }
			end
			return nil, 404, "no such shape"
		end,
	},

	-- ?misbehave=<shape>: refusals of every shape; no opinion otherwise.
	connect = function(sock, hs)
		local how = hs.query.misbehave
		if how == "false-err" then
			return false, "not allowed"
		elseif how == "false-string-status" then
			return false, "abc", "x"
		elseif how == "throw-looping-tostring" then
			error(looping())
		elseif how == "false-looping-message" then
			return false, 403, looping()
		elseif how == "identity-looping-index" then
			-- No userId of its own: its __index would loop if asked.
			return looping()
		end
		return nil
	end,
}
