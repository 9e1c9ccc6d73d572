-- waiter - a connected hook that waits, for tests/integration/ordering.test.js.
-- A socket whose handshake query has `hold` (a URL of the test's own HTTP
-- server) waits in its connected hook for that request's answer, then emits
-- `waiter:ready`. `order:note` acks with the notes this socket's handlers
-- ran so far (its events' order as the handlers saw them). The disconnect
-- hook records who went, and `order:gone` answers that list;
-- `order:ready` whether a socket's connected hook has ended.
--   PARLEY_PLUGIN_PATH=tests/plugins PARLEY_PLUGINS=testkit,waiter

local notes = {}    -- socket id -> { note, ... } in the order handlers ran
local gone = {}     -- "socket id reason connected-hook-done" of sockets that went
local ready = {}    -- socket id -> true once its connected hook ended

return {
	connected = function(sock)
		notes[sock.id] = {}
		local hold = sock.handshake.query.hold
		if hold then
			local answer, err = parley.http.request({ url = hold, timeout_ms = 20000 })
			-- The socket may be gone by now: emitting to it is harmless.
			sock:emit("waiter:ready", { status = answer and answer.status, err = err })
		end
		ready[sock.id] = true
	end,

	disconnect = function(sock, reason)
		gone[#gone + 1] = { id = sock.id, reason = reason, ready = ready[sock.id] == true,
			notes = #(notes[sock.id] or {}) }
	end,

	events = {
		["order:note"] = function(sock, n)
			local mine = notes[sock.id]
			mine[#mine + 1] = n
			return { notes = mine, ready = ready[sock.id] == true }
		end,
		["order:gone"] = function()
			return gone
		end,
		-- Whether socket `id`'s connected hook has ended (it may be gone).
		["order:ready"] = function(sock, id)
			return ready[id] == true
		end,
	},
}
