-- testkit - events the integration tests use to reach protocol features the
-- chat scripts have no use for: echoes, binary bounces, server-to-client
-- acks, arbitrary rooms and broadcasts, failures. Enabled only in tests:
--   PARLEY_PLUGIN_PATH=tests/plugins PARLEY_PLUGINS=testkit

return {
	-- /ns[x: a namespace with a "[" in it (the ack id goes after its comma).
	namespaces = { "/admin", "/ns[x" },

	-- HTTP routes (tests/integration/api.test.js).
	routes = {
		["GET /api/test/echo/:id"] = function(req)
			return { id = req.params.id, query = req.query, method = req.method }
		end,
		["POST /api/test/things"] = function(req)
			return 201, { got = req.body }
		end,
		["DELETE /api/test/things/:id"] = function(req)
			return 204
		end,
		-- Answers only once the store has synced: a parked request.
		["GET /api/test/durable"] = function(req)
			parley.kv.set("api", "written")
			local ok, err = parley.kv.wait()
			return { waited = ok, err = err }
		end,
		-- Counts the calls under :id: a route must run once per request.
		["DELETE /api/test/count/:id"] = function(req)
			return { n = parley.kv.incr("api-count:" .. req.params.id, 1), body = req.body }
		end,
		["GET /api/test/count/:id"] = function(req)
			return { n = tonumber(parley.kv.get("api-count:" .. req.params.id)) or 0 }
		end,
		["GET /api/test/fail"] = function()
			error("route boom")
		end,
		["GET /api/test/refuse"] = function()
			return nil, 409, "already there"
		end,
	},

	-- For test:filtered-args only: a filter sees the first argument, and
	-- what it returns replaces that one (tests/integration/args.test.js).
	filter = function(sock, event, data)
		if event ~= "test:filtered-args" then
			return
		end
		if data == "refuse" then
			return nil, 403, "refused by the filter"
		end
		return { filtered = data }
	end,

	events = {
		["test:filtered-args"] = function(sock, ...)
			return ...
		end,

		-- Acks back the payload as received (binary included).
		["test:echo"] = function(sock, data)
			return data
		end,

		-- Emits the payload back to the sender as "test:bounced".
		["test:bounce"] = function(sock, data)
			sock:emit("test:bounced", data)
			return true
		end,

		-- Asks the client with an ack: {event, data, timeout}; the outcome
		-- comes back as "test:answer" {error, args}.
		["test:ask"] = function(sock, data)
			sock:request(data.event, data.data, data.timeout or 2000, function(err, ...)
				sock:emit("test:answer", { error = err or parley.null, args = { ... } })
			end)
			return true
		end,

		-- Several arguments (tests/integration/args.test.js): acks back
		-- every argument as received (binary included).
		["test:args"] = function(sock, ...)
			return ...
		end,

		-- Emits every argument back to the sender as "test:bounced-args";
		-- acks how many there were.
		["test:bounce-args"] = function(sock, ...)
			sock:emit("test:bounced-args", ...)
			return select("#", ...)
		end,

		-- (room, ...): every argument after the room to the room, as
		-- "test:broadcast-args"; acks the sockets reached.
		["test:broadcast-args"] = function(sock, room, ...)
			return parley.of(sock.namespace):to(room):emit("test:broadcast-args", ...)
		end,

		-- (room, list): each item of the list to the room as its own
		-- "test:broadcast-args", all in one call (so that they leave in one
		-- flush); acks how many.
		["test:broadcast-each"] = function(sock, room, list)
			local to = parley.of(sock.namespace):to(room)
			for _, item in ipairs(list) do
				to:emit("test:broadcast-args", item)
			end
			return #list
		end,

		-- (event, ...): asks the client with every argument after the event
		-- (the default timeout); the outcome comes back as "test:answer-args"
		-- with the error (null for none) and then every value of the answer.
		["test:ask-args"] = function(sock, event, ...)
			-- (`...` inside an argument list gives one value: the list is
			-- built, the timeout and the callback after it.)
			local n = select("#", ...)
			local args = { ... }
			args[n + 2] = function(e, ...)
				sock:emit("test:answer-args", e or parley.null, ...)
			end
			local id, err = sock:request(event, unpack(args, 1, n + 2))
			return id ~= nil or err
		end,

		-- An error-first answer, as Node callbacks take it: (null, result).
		["test:error-first"] = function(sock, ...)
			return parley.null, { got = select("#", ...) }
		end,

		-- Arguments with a nil between (null on the wire) and after (none).
		["test:holes"] = function(sock)
			sock:emit("test:holes", 1, nil, 3, nil, nil)
			return "a", nil, "c", nil
		end,

		["test:join"] = function(sock, data)
			local ok, err = sock:join(data.room)
			if not ok then
				return nil, 400, tostring(err)
			end
			return sock:rooms()
		end,

		["test:leave"] = function(sock, data)
			sock:leave(data.room)
			return sock:rooms()
		end,

		["test:rooms"] = function(sock)
			return sock:rooms()
		end,

		-- {id, event, data}: an emit to the socket `id` alone (sock:emit);
		-- {id, join = room} or {id, leave = room}: makes it join or leave.
		-- Acks whether the socket was there.
		["test:to-socket"] = function(sock, data)
			local s = parley.socket(data.id)
			if not s then
				return false
			end
			if data.join then
				s:join(data.join)
			elseif data.leave then
				s:leave(data.leave)
			else
				s:emit(data.event, data.data)
			end
			return true
		end,

		-- parley.json.encode of tables with number keys: the text, or the error.
		["test:encode-keys"] = function()
			local function try(v)
				local ok, r = pcall(parley.json.encode, v)
				return ok and r or "error: " .. tostring(r)
			end
			return { try({ [2] = "a" }), try({ [1.5] = "b" }), try({ [-3] = "c" }),
				try({ [math.huge] = "d" }) }
		end,

		["test:room-users"] = function(sock, data)
			return parley.room_users(data.room, sock.namespace)
		end,

		-- {rooms, exceptRooms, exceptSelf, exceptSockets, event, data} ->
		-- sockets reached
		["test:broadcast"] = function(sock, data)
			local b = parley.of(sock.namespace):to(data.rooms[1])
			for i = 2, #data.rooms do
				b:to(data.rooms[i])
			end
			for _, r in ipairs(data.exceptRooms or {}) do
				b:except(r)
			end
			if data.exceptSelf then
				b:except(sock)
			end
			for _, id in ipairs(data.exceptSockets or {}) do
				b:except(parley.socket(id))
			end
			return b:emit(data.event, data.data)
		end,

		-- Sends a table with no JSON form (a function in it) as `how` says:
		-- emit, broadcast or request; acks whether the send raised, and what.
		["test:unencodable"] = function(sock, data)
			local bad = { n = 1, f = function() end }
			local sends = {
				emit = function() return sock:emit("test:bad", bad) end,
				broadcast = function()
					return parley.of(sock.namespace):to("room:bad"):emit("test:bad", bad)
				end,
				request = function()
					return sock:request("test:bad", bad, 1000, function() end)
				end,
			}
			local ok, err = pcall(sends[data.how])
			return { raised = not ok, message = tostring(err) }
		end,

		-- A result with no JSON form (a function in it).
		["test:bad-result"] = function()
			return { n = 1, f = function() end }
		end,

		["test:whoami"] = function(sock)
			return { id = sock.id, userId = sock.userId, namespace = sock.namespace,
				 transport = sock.transport, user = sock.user, handshake = sock.handshake }
		end,

		["test:fail"] = function()
			error("boom")
		end,

		-- Runaway scripts, for the guard (tests/integration/guard.test.js).
		["test:spin"] = function()
			while true do end
		end,

		-- A loop LuaJIT would compile if it could: no hooks run in traces.
		["test:hot"] = function()
			local x = 0
			for i = 1, 1e15 do
				x = x + i % 7
			end
			return x
		end,

		-- Catches whatever stops the inner loop, and loops again.
		["test:spin-pcall"] = function()
			while true do
				pcall(function() while true do end end)
				xpcall(function() while true do end end, function(e) return e end)
			end
		end,

		-- Pattern matching that backtracks without end, all inside one C
		-- call where no hook runs: parley's own matcher asks the guard.
		["test:pattern"] = function()
			return (string.rep("a", 2000)):find(".-.-.-.-.-.-x")
		end,

		-- The same behind pcall and xpcall: what they catch is returned,
		-- which happens only if the stop was kept.
		["test:pattern-pcall"] = function()
			local s = string.rep("a", 2000)
			local _, err = pcall(string.find, s, ".-.-.-.-.-.-x")
			local _, err2 = xpcall(function() return s:match("(.-)(.-)(.-)(.-)(.-)x") end,
				function(e) return e end)
			return { caught = tostring(err), caught2 = tostring(err2) }
		end,

		-- gsub calling a replacement function that never returns.
		["test:gsub-spin"] = function()
			return (("abc"):gsub(".", function() while true do end end))
		end,

		["test:hog"] = function()
			local t = {}
			while true do
				t[#t + 1] = string.rep("x", 4096) .. #t
			end
		end,

		-- Catches the memory error and tries again, forever.
		["test:hog-pcall"] = function()
			local t = {}
			while true do
				pcall(function()
					while true do
						t[#t + 1] = string.rep("y", 4096) .. #t
					end
				end)
				t = {}
			end
		end,

		-- For the guard and the runtime (tests/integration/guard-runtime.test.js):
		-- waits for the store, then spins until the guard stops it.
		["test:wait-spin"] = function()
			parley.kv.wait()
			while true do end
		end,
		-- Waits for the store as a tail call: once resumed, only the
		-- runtime's code runs (the wait's return, the answer, the ack).
		["test:wait-tail"] = function()
			return parley.kv.wait()
		end,

		-- Key-value storage (tests/integration/kv.test.js).
		["test:kv-set"] = function(sock, data)
			local ok, err = parley.kv.set(data.key, data.value, data.ttl)
			if not ok then
				return nil, 400, err
			end
			-- Read back at once: the write is visible before it is durable.
			return { value = parley.kv.get(data.key) }
		end,

		["test:kv-get"] = function(sock, data)
			return { value = parley.kv.get(data.key) }
		end,

		-- What parley.store.failure tells a client for a store error.
		["test:store-failure"] = function(sock, data)
			local status, message = parley.store.failure(data.err, data.otherwise)
			return { status = status, message = message }
		end,

		["test:kv-incr"] = function(sock, data)
			local v, err = parley.kv.incr(data.key, data.delta, data.ttl)
			if not v then
				return nil, 400, err
			end
			return { value = v }
		end,

		-- kv.cas: { ok = true | false } or 400 with the error.
		["test:kv-cas"] = function(sock, data)
			local ok, res, err = pcall(parley.kv.cas, data.key, data.expected, data.new, data.ttl)
			if not ok then
				return nil, 400, tostring(res)
			end
			if res == nil then
				return nil, 500, err
			end
			return { ok = res }
		end,

		-- Acked only once the write is on disk.
		["test:kv-durable-set"] = function(sock, data)
			parley.kv.set(data.key, data.value)
			local ok, err = parley.kv.wait()
			if not ok then
				return nil, 500, err
			end
			return { durable = true }
		end,

		["test:kv-keys"] = function(sock, data)
			parley.kv.wait()
			return parley.kv.keys(data.prefix)
		end,

		-- A script may still catch its own errors.
		["test:catch"] = function()
			local ok, err = pcall(error, "mine")
			return { ok = ok, err = err }
		end,

		["test:refuse"] = function()
			return nil, 418, "refused on purpose"
		end,

		["test:disconnect-me"] = function(sock)
			sock:disconnect()
		end,
	},
}
