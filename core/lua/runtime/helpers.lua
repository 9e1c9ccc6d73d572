-- runtime/helpers.lua - the first part of the runtime, the Lua half of
-- parley's seam, embedded in the binary. The runtime loads the scripts
-- folder and the enabled plugins into a registry of hooks in a
-- deterministic order, builds the `parley` API that scripts see, and
-- dispatches what the core hands it. core/lua/script.c runs its parts in
-- order (helpers, jobs, sockets, api, sandbox, plugins, dispatch), each
-- with `core`, the C host API, and `C`, the context they share: each part
-- adds to C what later parts use, and takes from it as locals what it
-- uses of the earlier ones. This part: the shared context, logging, and
-- reading what scripts hand back.
local core, C = ...

-- Start a collection when the heap has grown by half, not doubled: every
-- connection leaves a little garbage behind, and at the default pause of
-- 200 a burst of connects keeps twice the live heap (measured: 160 bytes
-- more per idle connection; no change in fan-out throughput).
collectgarbage("setpause", 150)
-- And finish it in fewer, larger steps (each about 10 KB of work instead of
-- 2 KB): the heap then grows less while a cycle is under way. Measured
-- against the default of 200: 120 bytes less per idle connection; fan-out,
-- durable sends and p99 latency unchanged within the noise
-- (docs/benchmarks.md).
collectgarbage("setstepmul", 1000)
-- JSON that keeps arrays as arrays and numbers exact (core/lua/jsonlua.c).
local json = core.json
local json_null = json.null
-- What the guard raises to stop a script that ran past its time budget
-- (core/lua/guard.c); the scripts' pcall and xpcall give it back.
local STOP = core.stop_token
local jit = jit
-- The metatable as it is, past a __metatable field: the runtime's metatables
-- are hidden from scripts (see the sandbox below), not from the runtime.
local metatable_of = debug.getmetatable

local R = {}            -- what the core calls
-- The state the files share, as fields of C (each file's locals are its
-- own): C.reg, the registry in force (modules and their hooks);
-- C.current_module, the module whose hook is running (for logging);
-- C.default_nsp, the namespace scripts address by default.
C.R = R
C.default_nsp = "/"
local sockets = {}      -- socket id -> socket table
local timers = {}       -- timer id -> { fn, owner, every }

-- ---- helpers ----

-- sock, when given, names the socket and its user in a JSON record.
local function log(level, msg, sock)
	if sock then
		core.log(level, msg, sock.id, sock.userId)
	else
		core.log(level, msg)
	end
end

local function module_tag(m)
	return m and m.name or "runtime"
end

-- ---- what scripts hand back ----
-- A value a script returns or throws may carry a metatable, and its
-- metamethods (__tostring, __index, __concat, ...) are script code: run from
-- here they would loop or throw inside the runtime, where no answer follows.
-- So the runtime never calls them: it reads such values with type() and raw
-- access only, and turns them into text itself.

-- Text for the log that says what `v` is, without running any of its code.
local function describe(v)
	local t = type(v)
	if t == "string" then
		return v
	end
	if t == "number" or t == "boolean" or t == "nil" then
		return tostring(v)
	end
	return "(a " .. t .. ", not a string)"
end

-- What the core sends of an error message (client_error, core/hub/client.c).
local MESSAGE_MAX = 1024

-- `s` cut to MESSAGE_MAX bytes between two characters: the core would cut
-- it there anyway, and text that ends inside a UTF-8 character makes the
-- client's WebSocket library drop the connection.
local function clip(s)
	if #s <= MESSAGE_MAX then
		return s
	end
	local cut = MESSAGE_MAX
	-- A continuation byte (10xxxxxx) after the cut: the cut splits a character.
	while cut > 0 and s:byte(cut + 1) >= 0x80 and s:byte(cut + 1) < 0xC0 do
		cut = cut - 1
	end
	return s:sub(1, cut)
end

-- A refusal (`nil, status, message` from a handler, filter or route; `false,
-- status, message` from a connect or join hook) as the client gets it: the
-- status, the message, and the script's mistake, if any, for the log.
-- `nil, err` (the host functions' convention) is the hook's own refusal with
-- err as its message. A status that is not an integer from 400 to 599 is the
-- script's mistake: a 500 (with its message, when that is good); so is a
-- message that is not text, which is not sent (a fixed one is).
local function refusal(status, message, default_status, default_message)
	if type(status) == "string" and message == nil then
		status, message = default_status, status
	end
	local problem
	if status == nil then
		status = default_status
	elseif type(status) ~= "number" or status % 1 ~= 0 or status < 400 or status > 599 then
		problem = "its status " .. describe(status) .. " is not an integer from 400 to 599"
		status = 500
	end
	if message == nil then
		message = default_message
	elseif type(message) == "number" then
		message = tostring(message)
	end
	if type(message) ~= "string" or not core.utf8_valid(message) then
		problem = (problem and problem .. "; " or "") .. "its message "
			.. (type(message) == "string" and "is not UTF-8" or describe(message))
		return 500, "a script failed", problem
	end
	return status, clip(message), problem
end

-- Calls a hook with the module's name in force; returns pcall's results.
-- (No table for the results: this runs for every hook of every event.)
local function restore_module(saved, ...)
	C.current_module = saved
	return ...
end

local function call(m, fn, ...)
	local saved = C.current_module
	C.current_module = m
	return restore_module(saved, xpcall(fn, debug.traceback, ...))
end

-- A hook's failure: a Lua error is a 500 and logged; a returned refusal
-- (nil/false, status, message) is the client's fault and not logged.
-- Returns the status and message the client gets. The failure may be the
-- memory budget, spent: what the runtime does next to answer gets a budget
-- of its own.
-- sock, when given, is the socket whose event the hook ran for: the line
-- names it and its user, who an operator may have to talk to.
local function script_failed(m, what, err, sock)
	core.renew_budget()
	local whose = sock and (" (socket " .. sock.id .. ", user " .. tostring(sock.userId) .. ")")
		or ""
	if err == STOP then
		log("error", module_tag(m) .. ": " .. what .. whose .. " was stopped: it ran longer "
			.. "than the script time budget (PARLEY_SCRIPT_TIMEOUT)", sock)
		return 500, "a script took too long"
	end
	-- The store could not answer (PostgreSQL unreachable, its queue full):
	-- raised by C.settle in the job. The client is told to come back.
	local down = type(err) == "string" and err:match("^PARLEY_EUNAVAILABLE: ([^\n]*)")
	if down then
		log("warn", module_tag(m) .. ": " .. what .. whose .. " failed: the message store "
			.. "is unavailable", sock)
		return 503, "the message store is unavailable: " .. down
	end
	log("error", module_tag(m) .. ": " .. what .. whose .. " failed: " .. describe(err), sock)
	return 500, "a script failed"
end

-- A refusal as refusal() reads it, its mistake (if any) logged.
local function refused(m, what, status, message, default_status, default_message)
	local st, msg, problem = refusal(status, message, default_status, default_message)
	if problem then
		log("error", module_tag(m) .. ": " .. what .. " refused badly: " .. problem)
	end
	return st, msg
end

-- For the parts after this one.
C.json = json
C.json_null = json_null
C.STOP = STOP
C.jit = jit
C.metatable_of = metatable_of
C.R = R
C.sockets = sockets
C.timers = timers
C.log = log
C.module_tag = module_tag
C.describe = describe
C.clip = clip
C.call = call
C.script_failed = script_failed
C.refused = refused
