-- runtime/dispatch.lua - what the core calls: connect, events, acks, HTTP
-- routes, resumes, timers.
-- A part of the runtime (the Lua half of parley's seam, embedded in the
-- binary; core/lua/script.c runs the parts in order): each gets the C host
-- API `core` and the context `C` the parts share, and adds to it what later
-- parts use.
local core, C = ...
local json, STOP, R, sockets = C.json, C.STOP, C.R, C.sockets
local timers, log, module_tag, describe = C.timers, C.log, C.module_tag, C.describe
local clip, call, script_failed, refused = C.clip, C.call, C.script_failed, C.refused
local waiting, step, run_job, encode_args = C.waiting, C.step, C.run_job, C.encode_args
local run_socket_job, drop_queued = C.run_socket_job, C.drop_queued
local decode_args, resolve_args, Socket, handshake_table = C.decode_args, C.resolve_args, C.Socket, C.handshake_table
local connecting, profile_of, armed_by = C.connecting, C.profile_of, C.armed_by

-- ---- dispatch from the core ----

-- Runs the connect hooks in order: the identity the first one gave, or
-- nil, status, message (a refusal, or a hook that failed).
local function identify(sock, hs, nsp, address)
	local identity
	for _, h in ipairs(C.reg.connect) do
		local ok, res, status, message = call(h.module, h.fn, sock, hs)
		if not ok then
			return nil, script_failed(h.module, "connect hook", res)
		end
		if res == false then
			local st, msg = refused(h.module, "connect hook", status, message, 401,
				"unauthorized")
			log("info", "connect refused (" .. st .. ", " .. nsp .. ", " .. tostring(address)
				.. "): " .. msg)
			return nil, st, msg
		end
		if type(res) == "table" and not identity then
			-- Read raw: the fields are the script's, an __index is its code.
			local user_id = rawget(res, "userId")
			if type(user_id) ~= "string" or user_id == "" then
				return nil, script_failed(h.module, "connect hook",
					"the identity it returned has no string userId")
			end
			if user_id:find("\0", 1, true) then
				-- The core keeps it as a C string, which would end there.
				return nil, script_failed(h.module, "connect hook",
					"the identity it returned has a NUL in its userId")
			end
			identity = { userId = user_id, name = rawget(res, "name"),
				avatar = rawget(res, "avatar"), phoneNumber = rawget(res, "phoneNumber") }
			rawset(sock, "userId", user_id)
			rawset(sock, "user", profile_of(identity))
		end
	end
	if not identity then
		log("info", "connect refused (401, " .. nsp .. ", " .. tostring(address)
			.. "): nobody identified the socket")
		return nil, 401, "unauthorized"
	end
	return identity
end

-- A new socket: runs the connect hooks. Returns the user id, or nil with a
-- status and a message.
function R.connect(id, nsp, query, auth_json, authorization, address)
	local hs = handshake_table(query, auth_json, authorization, address)
	-- Sized for the fields every socket gets: one allocation, no rehash.
	local sock = setmetatable({ id = id, namespace = nsp, userId = nil, user = nil }, Socket)
	connecting[sock] = hs
	local identity, status, message = identify(sock, hs, nsp, address)
	connecting[sock] = nil
	if not identity then
		return nil, status, message
	end
	local most = core.settings.max_user_sockets
	if most > 0 and core.room_size(nsp, "user:" .. identity.userId) >= most then
		core.limit("max_user_sockets", "user " .. identity.userId .. " has " .. most
			.. " sockets already (PARLEY_MAX_USER_SOCKETS): connect refused")
		return nil, 429, "too many connections for this user"
	end
	sockets[id] = sock
	return identity.userId
end

-- The connected hooks, or the disconnect hooks, in order: one job.
local function hooks_job(sock, which, what, reason)
	for _, h in ipairs(C.reg[which]) do
		local ok, err = call(h.module, h.fn, sock, reason)
		if not ok then
			script_failed(h.module, what, err)
		end
	end
end

-- The socket is in its user's room: run the connected hooks, as a job
-- that may wait; the socket's events wait for it (jobs.lua).
function R.connected(id)
	local sock = sockets[id]
	-- One line per socket that opens and closes: who, from where, how.
	log("info", "runtime: socket " .. id .. " connected: user " .. sock.userId .. ", " .. sock.namespace
		.. ", " .. tostring(core.transport(id)) .. ", from " .. tostring(core.address(id)), sock)
	run_socket_job(sock, true, hooks_job, sock, "connected", "connected hook")
end

-- Connection state recovery: the held socket `id` is back, and `fresh`,
-- the socket its client's CONNECT made and the connect hooks accepted for
-- the same user, goes without a disconnect (it never was, to the scripts).
-- The connected hooks run next, for `id`, with sock.recovered. (Not
-- R.resume: that one resumes jobs.)
function R.recovered(id, fresh)
	sockets[fresh] = nil
	local sock = sockets[id]
	if sock then
		rawset(sock, "recovered", true)
		-- Read again when asked: it is the new connection's now.
		rawset(sock, "handshake", nil)
	end
end

-- Recovery across nodes: the socket the connect hooks accepted as `fresh`
-- is a session another node made, and takes its id `id`. The connected
-- hooks run next, for `id`, with sock.recovered.
function R.adopted(id, fresh)
	local sock = sockets[fresh]
	sockets[fresh] = nil
	if sock then
		rawset(sock, "id", id)
		rawset(sock, "recovered", true)
		sockets[id] = sock
	end
end

function R.disconnect(id, reason)
	local sock = sockets[id]
	if not sock then
		return
	end
	log("info", "runtime: socket " .. id .. " disconnected: user " .. tostring(sock.userId) .. ", "
		.. sock.namespace .. ", " .. tostring(reason), sock)
	-- Events still queued behind a waiting job never ran: nobody is left
	-- to answer them (the client sends again what it got no ack for).
	local dropped = drop_queued(sock)
	if dropped > 0 then
		log("info", "runtime: socket " .. id .. " went with " .. dropped
			.. " event(s) queued: not run", sock)
	end
	-- A job, at once (not behind the socket's waiting job: the socket is
	-- still counted in its rooms until the hooks first wait).
	run_job(hooks_job, sock, "disconnect", "disconnect hook", reason)
	sockets[id] = nil
end

-- Cluster mode: what the cluster decided of a user (core/cluster/presence.c):
-- the presence hooks run in order, as one job that may wait, with
-- { namespace, userId, state = "online" | "leaving" | "back", gone } (gone:
-- when the user's last socket went, ms, for "leaving").
local function presence_job(change)
	for _, h in ipairs(C.reg.presence) do
		local ok, err = call(h.module, h.fn, change)
		if not ok then
			script_failed(h.module, "presence hook", err)
		end
	end
end

function R.presence(nsp, user, state, gone)
	if #C.reg.presence == 0 then
		return
	end
	run_job(presence_job, { namespace = nsp, userId = user, state = state, gone = gone })
end

-- Cluster mode: another node died (core/cluster/presence.c), told once per
-- death on every node: the node_gone hooks run in order, as one job that
-- may wait, with the dead node's id (parley.settings.node_id there) and the
-- start of it that died (its parley.settings.node_start).
local function node_gone_job(node, start)
	for _, h in ipairs(C.reg.node_gone) do
		local ok, err = call(h.module, h.fn, node, start)
		if not ok then
			script_failed(h.module, "node_gone hook", err)
		end
	end
end

function R.node_gone(node, start)
	if #C.reg.node_gone == 0 then
		return
	end
	run_job(node_gone_job, node, start)
end

-- ---- repeat offenders of the guard ----
-- A call the guard stopped held the loop for its whole budget: everyone
-- waited. Once may be bad luck; the same socket or the same handler stopped
-- again and again would cost everyone the budget at every turn. A socket
-- stopped again is paused (its connection not read, its events refused)
-- for PARLEY_GUARD_THROTTLE times its stops past the first, then disconnected at
-- PARLEY_GUARD_SOCKET_STOPS in a minute; a handler (a filter, a route) is
-- disabled at PARLEY_GUARD_HANDLER_STOPS in a minute, until the next load
-- builds a new registry. docs/hardening.md, "The guard".
local SOCKET_STOPS = core.settings.guard_socket_stops
local HANDLER_STOPS = core.settings.guard_handler_stops
local THROTTLE_MS = core.settings.guard_throttle
local STOP_WINDOW_MS = 60000
-- Per socket: { n = stops in the window, since = when it began, till =
-- refused until }. Weak keys: the socket's table goes at disconnect; and
-- the record is not on it, where its script could reset it.
local socket_stops = setmetatable({}, { __mode = "k" })

-- Counts a stop in rec (n, since); returns the count in this minute.
local function count_stop(rec, now)
	if not rec.since or now - rec.since > STOP_WINDOW_MS then
		rec.n, rec.since = 0, now
	end
	rec.n = rec.n + 1
	return rec.n
end

local function whose(sock)
	return "socket " .. sock.id .. " (user " .. tostring(sock.userId) .. ")"
end

-- The guard stopped h (a registry entry: an event handler, a filter, a
-- route) running `what`, for sock (nil for a route).
local function guard_stopped(h, what, sock)
	local now = core.now()
	h.stops = h.stops or {}
	local n = count_stop(h.stops, now)
	if n >= HANDLER_STOPS and not h.disabled then
		h.disabled = true
		core.limit("guard_handler_disabled", module_tag(h.module) .. ": the " .. what
			.. " was stopped by the guard " .. n .. " times in a minute "
			.. "(PARLEY_GUARD_HANDLER_STOPS " .. HANDLER_STOPS .. "): disabled until the "
			.. "next reload" .. (sock and ("; the last stop was for " .. whose(sock)) or ""),
			"warn")
	end
	if not sock then
		return
	end
	local rec = socket_stops[sock]
	if not rec then
		rec = {}
		socket_stops[sock] = rec
	end
	n = count_stop(rec, now)
	if n >= SOCKET_STOPS then
		core.limit("guard_socket_disconnected", whose(sock) .. ": the guard stopped its calls "
			.. n .. " times in a minute, the last the " .. what .. " (PARLEY_GUARD_SOCKET_STOPS "
			.. SOCKET_STOPS .. "): disconnected", "warn")
		core.error(sock.id, 429, "disconnected: your events ran past the script time budget "
			.. n .. " times in a minute")
		core.disconnect(sock.id)
		return
	end
	-- One stop may be the input's bad luck, not the client's doing: the
	-- socket is served as before. From the second on it is paused.
	if n >= 2 and THROTTLE_MS > 0 then
		local ms = THROTTLE_MS * (n - 1)
		rec.till = now + ms
		C.throttle(sock, ms)
		core.limit("guard_socket_throttled", whose(sock) .. ": the guard stopped its calls "
			.. n .. " times in a minute, the last the " .. what .. ": paused for " .. ms
			.. " ms (PARLEY_GUARD_THROTTLE)")
	end
end

-- Whether sock is paused for the guard's stops: then its event is refused
-- (a transport whose reading cannot be paused, long-polling, gets here).
local function guard_throttled(sock, ack)
	local rec = socket_stops[sock]
	if not rec or not rec.till or core.now() >= rec.till then
		return false
	end
	core.error(sock.id, 429, "throttled: your events ran past the script time budget", ack)
	return true
end

-- The refusal of an event or request a disabled handler would have run.
local function disabled_message(h, what)
	return clip(module_tag(h.module) .. ": the " .. what .. " is disabled: the guard stopped "
		.. "it again and again; it runs again after the next reload")
end

-- A refusal a server operator wants to see: someone acting as somebody
-- else, or where they do not belong. (status and message as refusal() gave.)
local function log_refusal(sock, event, status, message)
	if status == 401 or status == 403 then
		log("info", "refused (" .. status .. ") " .. event .. " from socket " .. sock.id .. " ("
			.. tostring(sock.userId) .. "): " .. message)
	end
end

-- Answers the client's ack with a handler's values (outcome's n, first, list).
local function send_ack(id, ack, n, first, list)
	if list then
		core.ack(id, ack, encode_args(unpack(list, 1, n)))
	else
		core.ack(id, ack, encode_args(first))
	end
end

-- A handler's outcome as answer_event reads it: call's ok, then how many
-- values it returned, the first, and all of them in a list when there are
-- more than one (most handlers return one value or none: no table then).
local function outcome(ok, ...)
	local n = select("#", ...)
	if n > 1 then
		return ok, n, (...), { ... }
	end
	return ok, n, (...)
end

-- An event's filters (on its first argument), then its handlers (on all of
-- them), then the ack: every value the first handler that returned one gave.
-- Every way out answers the client: the ack (when it asked for one), or an
-- error event (and the ack with it).
local function answer_event(sock, handlers, name, args, nargs, ack)
	local id = sock.id
	for _, h in ipairs(C.reg.filter) do
		if h.disabled then
			core.error(id, 503, disabled_message(h, "filter"), ack)
			return
		end
		local ok, res, status, message = call(h.module, h.fn, sock, name, args[1])
		if not ok then
			local st, msg = script_failed(h.module, "filter for " .. name, res, sock)
			core.error(id, st, msg, ack)
			if res == STOP then
				guard_stopped(h, "filter (for " .. name .. ")", sock)
			end
			return
		end
		if res == nil and status then
			local st, msg = refused(h.module, "filter for " .. name, status, message, 400,
				"rejected")
			log_refusal(sock, name, st, msg)
			core.error(id, st, msg, ack)
			return
		end
		if res ~= nil then
			args[1] = res
			if nargs == 0 then
				nargs = 1
			end
		end
	end
	local result_n, result, result_list, result_module
	for _, h in ipairs(handlers) do
		if h.disabled then
			core.error(id, 503, disabled_message(h, "handler for " .. name), ack)
			return
		end
		local ok, n, res, list = outcome(call(h.module, h.fn, sock, unpack(args, 1, nargs)))
		if not ok then
			local st, msg = script_failed(h.module, "handler for " .. name, res, sock)
			core.error(id, st, msg, ack)
			if res == STOP then
				guard_stopped(h, "handler for " .. name, sock)
			end
			return
		end
		-- nil, status, message: a refusal (nil alone, or nil, nil: nothing).
		if res == nil and list and list[2] ~= nil then
			local st, msg = refused(h.module, "handler for " .. name, list[2], list[3], 400,
				"failed")
			log_refusal(sock, name, st, msg)
			core.error(id, st, msg, ack)
			return
		end
		if result == nil and res ~= nil then
			result_n, result, result_list, result_module = n, res, list, h.module
		end
	end
	if ack then
		-- A result with no JSON form is the handler's failure: the client
		-- gets its 500, not silence.
		local ok, err = pcall(send_ack, id, ack, result_n, result, result_list)
		if not ok then
			local st, msg = script_failed(result_module, "the result of the handler for "
				.. name, err)
			core.error(id, st, msg, ack)
		end
	end
end

-- One job. Should the runtime's own work fail (no memory left under the
-- budget, a bug), the client is still answered.
-- started: the core's clock when the event came (core.clock_us), for the
-- ack's latency: every way out of here has answered.
local function event_job(sock, handlers, name, args, nargs, ack, started)
	local ok, err = pcall(answer_event, sock, handlers, name, args, nargs, ack)
	if not ok then
		core.renew_budget()
		pcall(core.error, sock.id, 500, "a script failed", ack)
		log("error", "runtime: the event " .. name .. " failed: " .. describe(err), sock)
	end
	if ack then
		core.observe_ack(started)
	end
end

-- Whether a client's argument list is longer than PARLEY_MAX_ARGS: then it
-- is counted and logged (a list that long cannot be a function's arguments
-- anyway: Lua's stack has a bound).
local MAX_ARGS = core.settings.max_args
local MAX_QUEUED = core.settings.max_queued_events
local function too_many_args(sock, what, nargs)
	if nargs <= MAX_ARGS then
		return false
	end
	core.limit("max_args", "socket " .. sock.id .. " (" .. tostring(sock.userId) .. "): "
		.. what .. " with " .. nargs .. " arguments, over PARLEY_MAX_ARGS (" .. MAX_ARGS
		.. "): refused")
	return true
end

-- A client event. Returns false for an event no script handles.
-- args: the event's arguments, decoded by the core.
function R.event(id, name, args, att, ack)
	local sock = sockets[id]
	if not sock then
		return true
	end
	local handlers = C.reg.events[name]
	if not handlers then
		core.error(id, 404, clip("unknown event: " .. name), ack)
		return false
	end
	-- Decoded arrays have no holes (a null is json.null): # is the count.
	local nargs = #args
	if too_many_args(sock, "the event " .. name, nargs) then
		core.error(id, 400, "too many arguments: at most " .. MAX_ARGS, ack)
		return true
	end
	if guard_throttled(sock, ack) then
		return true
	end
	local derr
	args, derr = resolve_args(args, att)
	if not args then
		core.error(id, derr.status, derr.message, ack)
		return true
	end
	if not run_socket_job(sock, false, event_job, sock, handlers, name, args, nargs, ack,
		ack and core.clock_us()) then
		core.limit("max_queued_events", "socket " .. id .. " (" .. tostring(sock.userId)
			.. "): the event " .. name .. " came with " .. MAX_QUEUED .. " events already "
			.. "waiting for the socket's earlier ones (PARLEY_MAX_QUEUED_EVENTS): refused")
		core.error(id, 429, "too many events waiting: at most " .. MAX_QUEUED, ack)
	end
	return true
end

local function callback_job(owner, cb, what, ...)
	local ok, err = call(owner, cb, ...)
	if not ok then
		script_failed(owner, what, err)
	end
end

-- The client answered (or did not) a Socket:request.
function R.ack(id, ack_id, args_json, att, why)
	local sock = sockets[id]
	local p = sock and sock.pending and sock.pending[ack_id]
	if not p then
		return
	end
	sock.pending[ack_id] = nil
	if why then
		run_job(callback_job, p.owner, p.cb, "ack callback", why)
		return
	end
	-- An answer whose placeholders name no attachment is no answer, nor is
	-- one with more arguments than a callback may take: the callback is told
	-- so rather than handed nothing as a success.
	local args = decode_args(args_json, att)
	if args and too_many_args(sock, "an answer", #args) then
		core.error(id, 400, "too many arguments in the answer: at most " .. MAX_ARGS)
		args = nil
	end
	if not args then
		run_job(callback_job, p.owner, p.cb, "ack callback", "invalid")
		return
	end
	run_job(callback_job, p.owner, p.cb, "ack callback", nil, unpack(args, 1, #args))
end

-- ---- HTTP routes ----

local function http_error(id, status, message)
	core.http_respond(id, status, json.encode({ status = "error", statusCode = status,
		message = message }))
end

-- Finds the route for a path: the route and its params, or nil and the
-- status (404: no such path; 405: the path exists for other methods).
local function match_route(method, path)
	local parts = {}
	for seg in path:gmatch("[^/]+") do
		parts[#parts + 1] = seg
	end
	local path_found = false
	for _, route in ipairs(C.reg.routes) do
		if #route.parts == #parts then
			local params = {}
			local ok = true
			for i, seg in ipairs(route.parts) do
				if seg:sub(1, 1) == ":" then
					params[seg:sub(2)] = parts[i]
				elseif seg ~= parts[i] then
					ok = false
					break
				end
			end
			if ok then
				path_found = true
				if route.method == method then
					return route, params
				end
			end
		end
	end
	return nil, path_found and 405 or 404
end

-- A route's outcome as an HTTP answer: a value (200), a status and a value,
-- nothing (200, no body), or a refusal (nil, status, message).
local function answer_route(id, route, req)
	local what = "route " .. req.method .. " " .. req.path
	if route.disabled then
		return http_error(id, 503, disabled_message(route, what))
	end
	local ok, a, b, c = call(route.module, route.fn, req)
	if not ok then
		http_error(id, script_failed(route.module, what, a))
		if a == STOP then
			guard_stopped(route, what)
		end
		return
	end
	if a == nil and b ~= nil then
		return http_error(id, refused(route.module, what, b, c, 400, "failed"))
	end
	local status, body = 200, a
	if type(a) == "number" then
		if a % 1 ~= 0 or a < 200 or a > 599 then
			return http_error(id, script_failed(route.module, what, "its status "
				.. describe(a) .. " is not an integer from 200 to 599"))
		end
		status, body = a, b
	end
	if body == nil then
		return core.http_respond(id, status, "")
	end
	local eok, text = pcall(json.encode, body)
	if not eok then
		return http_error(id, script_failed(route.module, what, text))
	end
	core.http_respond(id, status, text)
end

-- One job; whatever fails, the request is answered (as event_job).
local ROUTE_FAILED = '{"status":"error","statusCode":500,"message":"a script failed"}'
local function route_job(id, route, req)
	local ok, err = pcall(answer_route, id, route, req)
	if not ok then
		core.renew_budget()
		pcall(core.http_respond, id, 500, ROUTE_FAILED)
		log("error", "runtime: the request " .. req.method .. " " .. req.path .. " failed: "
			.. describe(err))
	end
end

-- An HTTP API request (the key was checked by the core).
function R.http(id, method, path, query, body)
	local route, params = match_route(method, path)
	if not route then
		if params == 405 then
			return http_error(id, 405, "method " .. method .. " not allowed on " .. path)
		end
		return http_error(id, 404, "no such route: " .. method .. " " .. path)
	end
	local data
	if body ~= nil then
		data = json.decode(body)
		if data == nil then
			return http_error(id, 400, "the body is not valid JSON")
		end
	end
	run_job(route_job, id, route, { method = method, path = path, params = params,
		query = query, body = data })
end

-- The core finished what a job waited for: the job gets what it passes
-- (a store wait: the error or nothing; an HTTP request, core/lua/host_http.c:
-- the answer, or nil and the error).
function R.resume(ticket, ...)
	local co = waiting[ticket]
	if not co then
		return
	end
	waiting[ticket] = nil
	local saved = C.current_module
	step(co, coroutine.resume(co, ...))
	C.current_module = saved
end

-- A round of store completions: { ticket, err or false, ... }.
function R.resume_all(list)
	for i = 1, #list, 2 do
		local err = list[i + 1]
		R.resume(list[i], err or nil)
	end
end

-- Runs a timer's callback. One the guard stopped would run past its budget
-- again at its next turn, and every turn after (the loop busy, everyone
-- else waiting): it is not run again. Its timer is cancelled if it repeats,
-- and so is every timer it set during that run (a callback that sets
-- itself again), which is logged and counted.
local function timer_job(id, t)
	local co = coroutine.running()
	local armed = {}
	armed_by[co] = armed
	local ok, err = call(t.owner, t.fn)
	armed_by[co] = nil
	if ok then
		return
	end
	script_failed(t.owner, "timer", err)
	if err ~= STOP then
		return
	end
	if timers[id] == t then
		armed[#armed + 1] = id
	end
	local cancelled = 0
	for _, a in ipairs(armed) do
		if timers[a] then
			timers[a] = nil
			core.cancel(a)
			cancelled = cancelled + 1
		end
	end
	if cancelled > 0 then
		core.limit("timer_cancelled", module_tag(t.owner) .. ": the guard stopped a timer "
			.. "callback: " .. cancelled .. " timer(s) it would run again cancelled")
	end
end

function R.timer(id)
	if id < 0 then
		return C.drain_due(id)
	end
	local t = timers[id]
	if not t then
		return
	end
	if t.every then
		core.timer(id, t.every)
	else
		timers[id] = nil
	end
	run_job(timer_job, id, t)
end
