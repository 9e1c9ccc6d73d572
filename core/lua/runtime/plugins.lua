-- runtime/plugins.lua - plugin configuration schemas, loading modules
-- into a registry, R.load.
-- A part of the runtime (the Lua half of parley's seam, embedded in the
-- binary; core/lua/script.c runs the parts in order): each gets the C host
-- API `core` and the context `C` the parts share, and adds to it what later
-- parts use.
local core, C = ...
local STOP, jit, R, describe = C.STOP, C.jit, C.R, C.describe
local call, script_failed, cancel_timers_of, sandbox_env = C.call, C.script_failed, C.cancel_timers_of, C.sandbox_env

-- ---- plugin configuration ----
-- A plugin may declare its configuration in plugins/<name>/schema.lua: a
-- table of field -> { type = "number"|"integer"|"string"|"boolean"|"table",
-- default, required, min, max, one_of = {...}, fields = {schema} (a record),
-- values = {spec} (a map), items = {spec} (an array) }. The configuration
-- (the config file's plugin_config[name]) is checked against it and filled
-- with defaults before the plugin runs; what it got is its global `config`.

local function deep_copy(v)
	if type(v) ~= "table" then
		return v
	end
	local out = {}
	for k, x in pairs(v) do
		out[k] = deep_copy(x)
	end
	return out
end

local check_record

local function check_value(spec, v, where)
	if v == nil then
		if spec.default ~= nil then
			return deep_copy(spec.default)
		end
		if spec.required then
			return nil, where .. " is required"
		end
		return nil
	end
	local t = spec.type
	local ok = (t == "integer" and type(v) == "number" and v == math.floor(v))
		or (t ~= "integer" and type(v) == t)
	if not ok then
		return nil, where .. ": expected " .. (t == "integer" and "an integer" or "a " .. t)
			.. ", got " .. type(v)
	end
	if type(v) == "number" then
		if spec.min and v < spec.min then
			return nil, where .. ": at least " .. spec.min
		end
		if spec.max and v > spec.max then
			return nil, where .. ": at most " .. spec.max
		end
	end
	if spec.one_of then
		local found = false
		for _, x in ipairs(spec.one_of) do
			found = found or x == v
		end
		if not found then
			return nil, where .. ": must be one of " .. table.concat(spec.one_of, ", ")
		end
	end
	if t == "table" then
		if spec.fields then
			return check_record(spec.fields, v, where)
		end
		local out = {}
		for k, x in pairs(v) do
			local sub = spec.values or (spec.items and type(k) == "number" and spec.items)
			if spec.items and type(k) ~= "number" then
				return nil, where .. ": expected an array"
			end
			if sub then
				local cv, err = check_value(sub, x, where .. "[" .. tostring(k) .. "]")
				if err then
					return nil, err
				end
				out[k] = cv
			else
				out[k] = deep_copy(x)
			end
		end
		return out
	end
	return v
end

function check_record(schema, given, where)
	local out = {}
	given = given or {}
	for k in pairs(given) do
		if schema[k] == nil then
			return nil, where .. ": unknown setting '" .. tostring(k) .. "'"
		end
	end
	for k, spec in pairs(schema) do
		local v, err = check_value(spec, given[k], where .. "." .. k)
		if err then
			return nil, err
		end
		out[k] = v
	end
	return out
end

-- Where a module's schema is: a plugin's schema.lua beside its init.lua,
-- a script's <name>.schema.lua beside <name>.lua (scripts/chat.schema.lua).
local function schema_path(path)
	local dir = path:match("^(.*)/init%.lua$")
	if dir then
		return dir .. "/schema.lua"
	end
	return (path:gsub("%.lua$", ".schema.lua"))
end

-- The module's schema, if there is one: nil (none), the table, or false, err.
local function load_schema(file)
	local src = core.read_file(file)
	if not src then
		return nil
	end
	local chunk, err = loadstring(src, "@" .. file)
	if not chunk then
		return false, err
	end
	setfenv(chunk, {})
	local ok, schema = pcall(chunk)
	if not ok or type(schema) ~= "table" then
		return false, file .. ": must return a table of fields"
			.. (ok and "" or ": " .. tostring(schema))
	end
	return schema
end

-- Compiles and runs one module file; returns its hook table or nil, err.
local function load_module(path, name, config)
	local src, err = core.read_file(path)
	if not src then
		return nil, err
	end
	local chunk, cerr = loadstring(src, "@" .. path)
	if not chunk then
		return nil, cerr
	end
	-- LuaJIT runs no hooks in compiled code, so the guard could not stop a
	-- hot loop: every function of a script stays interpreted.
	jit.off(chunk, true)
	local schema, serr = load_schema(schema_path(path))
	if schema == false then
		return nil, serr
	end
	if schema then
		local checked, cerr2 = check_record(schema, config, "plugin_config." .. name)
		if not checked then
			return nil, "plugin '" .. name .. "': " .. cerr2
		end
		config = checked
	end
	local env = sandbox_env(name)
	env.config = config or {}
	setfenv(chunk, env)
	local m = { name = name, path = path }
	local ok, hooks = call(m, chunk)
	if not ok then
		if hooks == STOP then
			return nil, path .. ": stopped: loading it ran longer than the script time budget"
		end
		return nil, describe(hooks)
	end
	if type(hooks) ~= "table" then
		return nil, path .. ": must return a table of hooks"
	end
	-- A plain copy (pairs is raw): an __index on the module's table would
	-- run its code each time the runtime looks a hook up.
	m.hooks = {}
	for k, v in pairs(hooks) do
		m.hooks[k] = v
	end
	m.priority = tonumber(m.hooks.priority) or 0
	return m
end

local hook_names = { "connect", "connected", "disconnect", "join", "filter", "load", "unload",
	"shutdown", "stored", "presence", "node_gone" }

-- "GET /api/users/:id" -> method, segments ({"api", "users", ":id"}).
local function parse_route(spec)
	local method, path = spec:match("^(%u+)%s+(/api/%S*)$")
	if not method then
		return nil
	end
	local parts = {}
	for seg in path:gmatch("[^/]+") do
		parts[#parts + 1] = seg
	end
	return method, parts
end

local function registry_new(modules)
	local r = { modules = modules, events = {}, namespaces = {}, default = nil, routes = {} }
	local route_owner = {}
	for _, n in ipairs(hook_names) do
		r[n] = {}
	end
	-- Priority first (higher runs first), then configuration order.
	for i, m in ipairs(modules) do
		m.order = i
	end
	table.sort(modules, function(a, b)
		if a.priority ~= b.priority then
			return a.priority > b.priority
		end
		return a.order < b.order
	end)
	for _, m in ipairs(modules) do
		local h = m.hooks
		for _, n in ipairs(hook_names) do
			if h[n] ~= nil then
				if type(h[n]) ~= "function" then
					return nil, m.path .. ": hook '" .. n .. "' must be a function"
				end
				r[n][#r[n] + 1] = { module = m, fn = h[n] }
			end
		end
		if h.events ~= nil then
			if type(h.events) ~= "table" then
				return nil, m.path .. ": 'events' must be a table of handlers"
			end
			for event, fn in pairs(h.events) do
				if type(event) ~= "string" or type(fn) ~= "function" then
					return nil, m.path .. ": events must map names to functions"
				end
				r.events[event] = r.events[event] or {}
				local list = r.events[event]
				list[#list + 1] = { module = m, fn = fn }
			end
		end
		if h.routes ~= nil then
			if type(h.routes) ~= "table" then
				return nil, m.path .. ": 'routes' must be a table of handlers"
			end
			for spec, fn in pairs(h.routes) do
				local method, parts
				if type(spec) == "string" then
					method, parts = parse_route(spec)
				end
				if not method or type(fn) ~= "function" then
					return nil, m.path .. ": route '" .. describe(spec)
						.. "' must be \"METHOD /api/...\" mapped to a function"
				end
				local shape = method .. " /" .. table.concat(parts, "/"):gsub(":[^/]+", ":")
				if route_owner[shape] then
					return nil, m.path .. ": route '" .. spec .. "' is already served by "
						.. route_owner[shape]
				end
				route_owner[shape] = m.name
				r.routes[#r.routes + 1] = { method = method, parts = parts, module = m, fn = fn }
			end
		end
		for _, nsp in ipairs(h.namespaces or {}) do
			if type(nsp) ~= "string" or nsp:sub(1, 1) ~= "/" then
				return nil, m.path .. ": namespaces must be strings starting with '/'"
			end
			r.namespaces[nsp] = true
			if not r.default and nsp ~= "/" then
				r.default = nsp
			end
		end
	end
	return r
end

-- Finds plugin `name` on the ';'-separated search path.
local function find_plugin(name, path)
	for dir in string.gmatch(path, "[^;]+") do
		local file = dir .. "/" .. name .. "/init.lua"
		if core.read_file(file) then
			return file
		end
	end
	return nil
end

-- The config file's plugin_config table (read again at each load, so that
-- a reload picks up changes), or nil.
local function read_plugin_config(file)
	if not file then
		return nil
	end
	local src = core.read_file(file)
	if not src then
		return nil
	end
	local chunk = loadstring(src, "@" .. file)
	if not chunk then
		return nil
	end
	setfenv(chunk, {})
	local ok, t = pcall(chunk)
	if ok and type(t) == "table" and type(t.plugin_config) == "table" then
		return t.plugin_config
	end
	return nil
end

-- Runs a hook of each module that has it (unload of the version going
-- away, shutdown); logs failures and goes on (it goes either way).
local function run_each(modules, hook)
	for _, m in ipairs(modules) do
		if m.hooks[hook] then
			local ok, err = call(m, m.hooks[hook])
			if not ok then
				script_failed(m, hook .. " hook", err)
			end
		end
	end
end

-- Runs the load hook of each module of a new version, while the old one
-- is still in force; nil, err (the module, the file and line) at the
-- first that fails.
local function run_load(modules)
	for _, m in ipairs(modules) do
		if m.hooks.load then
			local ok, err = call(m, m.hooks.load)
			if not ok then
				if err == STOP then
					return nil, m.path .. ": load hook stopped: it ran longer than the "
						.. "script time budget (PARLEY_SCRIPT_TIMEOUT)"
				end
				return nil, m.name .. ": load hook failed: " .. describe(err)
			end
		end
	end
	return true
end

local files_loaded = {}

-- Builds every module of a load; nil, err at the first that fails.
local function build(scripts_dir, plugins, plugin_path, plugin_config, modules, files)
	local list_src, err = core.read_file(scripts_dir .. "/init.lua")
	if not list_src then
		return nil, err
	end
	files[#files + 1] = scripts_dir .. "/init.lua"
	local list_chunk, lerr = loadstring(list_src, "@" .. scripts_dir .. "/init.lua")
	if not list_chunk then
		return nil, lerr
	end
	setfenv(list_chunk, {})
	local ok, names = pcall(list_chunk)
	if not ok or type(names) ~= "table" then
		return nil, scripts_dir .. "/init.lua: must return a list of script names"
			.. (ok and "" or (": " .. tostring(names)))
	end
	for _, name in ipairs(names) do
		local file = scripts_dir .. "/" .. name .. ".lua"
		files[#files + 1] = file
		files[#files + 1] = schema_path(file)
		local m, merr = load_module(file, name, plugin_config and plugin_config[name])
		if not m then
			return nil, merr
		end
		modules[#modules + 1] = m
	end
	for name in string.gmatch(plugins or "", "[^,]+") do
		local file = find_plugin(name, plugin_path)
		if not file then
			return nil, "plugin '" .. name .. "' not found in " .. plugin_path
		end
		files[#files + 1] = file
		files[#files + 1] = schema_path(file)
		local m, merr = load_module(file, name, plugin_config and plugin_config[name])
		if not m then
			return nil, merr
		end
		modules[#modules + 1] = m
	end
	-- Settings for a module that is not loaded would be ignored without a
	-- word: a misspelt name, or a plugin left out of `plugins`.
	for key in pairs(plugin_config or {}) do
		local found = false
		for _, m in ipairs(modules) do
			found = found or m.name == key
		end
		if not found then
			local names = {}
			for _, m in ipairs(modules) do
				names[#names + 1] = m.name
			end
			return nil, "plugin_config." .. tostring(key) .. ": no enabled plugin or script is "
				.. "named '" .. tostring(key) .. "' (enabled: " .. table.concat(names, ", ")
				.. "; a plugin is enabled by PARLEY_PLUGINS, file key plugins)"
		end
	end
	return registry_new(modules)
end

-- Brings a new version up beside the one in force (STYLE.md 15): compiles
-- and runs every module, builds the registry, runs the new load hooks,
-- and only if all of that succeeded swaps it in; then the old modules get
-- their unload hook and lose their timers. On any error the old version
-- goes on untouched (its timers, its registry) and the new modules'
-- timers go. The core calls this between loop iterations.
-- Returns true or nil, err.
function R.load(scripts_dir, plugins, plugin_path, config_file)
	local modules, files = {}, {}
	-- Protected: whatever fails (memory the budget refuses, say), the
	-- timers the new modules set go with them below.
	local built, r, err = pcall(build, scripts_dir, plugins, plugin_path,
		read_plugin_config(config_file), modules, files)
	if not built then
		r, err = nil, describe(r)
	end
	if r then
		-- The load hooks see the namespace they will serve as the default
		-- (parley.to, parley.namespace).
		local old_nsp = C.default_nsp
		C.default_nsp = r.default or "/"
		local ok, lerr = run_load(r.modules)
		if not ok then
			C.default_nsp = old_nsp
			r, err = nil, lerr
		end
	end
	if not r then
		cancel_timers_of(modules)
		return nil, err
	end
	for nsp in pairs(r.namespaces) do
		core.namespace(nsp)
	end
	local old = C.reg
	C.reg = r
	files_loaded = files
	if old then
		run_each(old.modules, "unload")
		cancel_timers_of(old.modules)
	end
	return true
end

-- The server is stopping: every socket has disconnected, and the store
-- commits what the shutdown hooks write before it closes.
function R.shutdown()
	if C.reg then
		run_each(C.reg.modules, "shutdown")
	end
end

-- The files the registry in force came from (the core watches them).
function R.files()
	return files_loaded
end
