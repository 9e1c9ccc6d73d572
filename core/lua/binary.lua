-- binary.lua - Socket.IO binary values on the Lua side, embedded in the
-- binary beside the runtime, which gets this module as core.binary: an
-- attachment's bytes as a Binary value, the placeholders of a binary
-- packet's arguments resolved to them, and the other way for what goes out.
-- Uses only the JSON module and a base64 encoder it is given, so that a fuzz
-- driver (tests/fuzz/fuzz_binary.c) runs it without the server.
local json, base64 = ...

-- getmetatable(binary) is false for scripts (each module's sandbox hides
-- the runtime's metatables); this module looks past that.
local metatable_of = debug.getmetatable
local Binary = { __metatable = false }
Binary.__index = Binary
local function binary(data)
	return setmetatable({ data = data }, Binary)
end
local function is_binary(v)
	-- rawequal: a script's metatable may have an __eq of its own.
	return rawequal(metatable_of(v), Binary)
end

-- Replaces {_placeholder=true, num=N} with the attachments they stand for.
-- As socket.io-parser decides: every object whose _placeholder is true is
-- one, and its num must be the index of an attachment; a placeholder with
-- any other num refuses the packet rather than reach a script as a table.
local function resolve_placeholders(v, att, depth)
	if type(v) ~= "table" or depth > 32 then
		return v
	end
	if v._placeholder == true then
		local n = v.num
		local a = type(n) == "number" and n % 1 == 0 and att[n + 1]
		if not a then
			error({ status = 400, message = "attachment placeholder out of range" })
		end
		return binary(a)
	end
	for k, x in pairs(v) do
		v[k] = resolve_placeholders(x, att, depth + 1)
	end
	return v
end

local function has_binary(v, depth)
	if type(v) ~= "table" or depth > 32 then
		return false
	end
	if is_binary(v) then
		return true
	end
	for _, x in pairs(v) do
		if type(x) == "table" and has_binary(x, depth + 1) then
			return true
		end
	end
	return false
end

-- A copy of v with binaries replaced: by placeholders (collecting the
-- attachments) when att is a table, by base64 strings otherwise.
local function strip_binary(v, att, depth)
	if type(v) ~= "table" or depth > 32 then
		return v
	end
	if is_binary(v) then
		if att then
			att[#att + 1] = v.data
			return { _placeholder = true, num = #att - 1 }
		end
		return base64(v.data)
	end
	local out = json.is_array(v) and json.array() or {}
	for k, x in pairs(v) do
		out[k] = strip_binary(x, att, depth + 1)
	end
	return out
end

-- Encodes one payload: JSON (any value but a string is handed to the core
-- as it is, which encodes it), and for binary data the attachments and the
-- JSON plain WebSocket clients get instead.
local function encode(data)
	if data == nil or json.is_raw(data) then
		-- Raw JSON (a stored message the core built) goes to the core as
		-- it is: no Lua string copy of it is made.
		return data
	end
	if type(data) == "table" and has_binary(data, 0) then
		local att = {}
		local sio = json.encode(strip_binary(data, att, 0))
		local plain = json.encode(strip_binary(data, nil, 0))
		return sio, att, plain
	end
	if type(data) ~= "string" then
		-- The core encodes it as it sends it (jsonlua_payload): no Lua
		-- string of the text is made. (A string returned is JSON text.)
		return data
	end
	return json.encode(data)
end

-- For a binary packet (att: its attachments' bytes, in order), resolves the
-- placeholders in the decoded arguments. Returns the arguments, or nil and
-- { status, message }.
local function resolve_args(args, att)
	if att then
		local rok, resolved = pcall(resolve_placeholders, args, att, 0)
		if not rok then
			return nil, type(resolved) == "table" and resolved
				or { status = 400, message = "invalid attachments" }
		end
		args = resolved
	end
	return args
end

-- Decodes an ack's arguments (a JSON array; an event's come decoded by the
-- core) and resolves the placeholders as resolve_args.
local function decode_args(args_json, att)
	local args = json.decode(args_json)
	if args == nil then
		return nil, { status = 400, message = "invalid JSON" }
	end
	return resolve_args(args, att)
end

return {
	binary = binary,
	is_binary = is_binary,
	has_binary = has_binary,
	encode = encode,
	decode_args = decode_args,
	resolve_args = resolve_args,
}
