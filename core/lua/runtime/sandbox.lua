-- runtime/sandbox.lua - the pcall that passes the guard's stop on, and
-- each module's environment.
-- A part of the runtime (the Lua half of parley's seam, embedded in the
-- binary; core/lua/script.c runs the parts in order): each gets the C host
-- API `core` and the context `C` the parts share, and adds to it what later
-- parts use.
local core, C = ...
local json, STOP, metatable_of, log = C.json, C.STOP, C.metatable_of, C.log
local parley = C.parley

-- ---- loading ----

-- A script's pcall cannot keep the guard's stop: it raises it again.
local function pass_stop(ok, ...)
	if not ok and (...) == STOP then
		error(STOP, 0)
	end
	return ok, ...
end

local function safe_pcall(f, ...)
	return pass_stop(pcall(f, ...))
end

local function safe_xpcall(f, handler, ...)
	return pass_stop(xpcall(f, function(e)
		if e == STOP then
			return STOP
		end
		return handler(e)
	end, ...))
end

-- ---- the sandbox ----
-- Every module runs in an environment of its own (STYLE.md 12): its own
-- globals, its own copies of string, table and math, and its own read-only
-- view of `parley`. What a module does to them (string.upper = ..., even
-- rawset on its view of parley) it does to itself alone, and its next
-- version starts afresh. What modules share on purpose is explicit:
-- parley.shared (one module's state across its versions), parley.kv, the
-- store, and the socket tables. The views are built once per module load;
-- a call through one costs a metatable __index step, no function call.
-- No io, os, debug, jit, ffi, require or load.

local viewed = setmetatable({}, { __mode = "k" }) -- view -> the table it shows

local function read_only(t, what)
	local view = setmetatable({}, {
		__index = t,
		__newindex = function(_, k)
			error(what .. " is read-only (setting " .. tostring(k) .. ")", 2)
		end,
		__metatable = false,
	})
	viewed[view] = t
	return view
end

-- A read-only view of t, whose tables are views too (parley.store, ...).
local function view_of(t, what)
	local shown = {}
	for k, v in pairs(t) do
		if type(v) == "table" then
			v = view_of(v, what .. "." .. k)
		end
		shown[k] = v
	end
	return read_only(shown, what)
end

-- next and pairs see through a view (LuaJIT has no __pairs) without
-- handing out the table behind it; other tables go to the real ones.
local function view_next(t, k)
	return next(viewed[t] or t, k)
end

local function view_pairs(t)
	if viewed[t] then
		return view_next, t, nil
	end
	return pairs(t)
end

-- Strings keep the real metatable, so s:find() reaches the real string
-- functions (the C ones included); but getmetatable("") gives a script
-- false, not the table every module's strings go through. The same for
-- the metatables the JSON values share (arrays, big numbers, raw JSON).
string.dump = nil
metatable_of("").__metatable = false
json.array_mt.__metatable = false
metatable_of(json.number("1")).__metatable = false
metatable_of(json.raw("1")).__metatable = false

local function copy(t)
	local out = {}
	for k, v in pairs(t) do
		out[k] = v
	end
	return out
end

local function sandbox_env(name)
	local env = {
		assert = assert, error = error, ipairs = ipairs, next = view_next,
		pairs = view_pairs, pcall = safe_pcall, select = select,
		tonumber = tonumber, tostring = tostring, type = type, unpack = unpack,
		xpcall = safe_xpcall, setmetatable = setmetatable,
		getmetatable = getmetatable, rawget = rawget, rawset = rawset,
		rawequal = rawequal,
		string = copy(string), table = copy(table), math = copy(math),
		parley = view_of(parley, "parley"),
	}
	env.print = function(...)
		local parts = {}
		for i = 1, select("#", ...) do
			parts[#parts + 1] = tostring((select(i, ...)))
		end
		log("info", name .. ": " .. table.concat(parts, "\t"))
	end
	return env
end

-- For the parts after this one.
C.sandbox_env = sandbox_env
