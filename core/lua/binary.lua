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
-- attachments) when att is a table, by base64 strings otherwise. A
-- placeholder is written as socket.io-parser writes it, _placeholder first
-- (a Lua table would give its keys in any order): clients that compare
-- packets as text, the protocol suite among them, see the same bytes.
local function strip_binary(v, att, depth)
	if type(v) ~= "table" or depth > 32 then
		return v
	end
	if is_binary(v) then
		if att then
			att[#att + 1] = v.data
			return json.raw('{"_placeholder":true,"num":' .. (#att - 1) .. "}")
		end
		return base64(v.data)
	end
	local out = json.is_array(v) and json.array() or {}
	for k, x in pairs(v) do
		out[k] = strip_binary(x, att, depth + 1)
	end
	return out
end

-- Encodes the arguments of an emit, a request or an ack for the core
-- (core/lua/host_sockets.c): returns the attachments (nil: none), the JSON
-- array plain WebSocket clients get instead (nil: the same arguments as
-- Socket.IO clients), then the arguments for the core to encode (a raw
-- value, a stored message say, passes as it is: no Lua string copy of it is
-- made). Without a binary the arguments come back untouched; with one in
-- any of them, each comes back as a copy with a placeholder for each
-- binary, numbered across all of them, and the plain array has the
-- binaries as base64. A nil after the last argument that is not nil is
-- none (the core drops those too); one before it is null.
local function encode_args(...)
	local n = select("#", ...)
	if n == 0 then
		return nil, nil
	end
	if n == 1 then
		local v = ...
		if not has_binary(v, 0) then
			return nil, nil, v
		end
	end
	local args = { ... }
	local found = false
	for i = 1, n do
		if has_binary(args[i], 0) then
			found = true
			break
		end
	end
	if not found then
		return nil, nil, ...
	end
	while n > 0 and args[n] == nil do
		n = n - 1
	end
	local att, plain = {}, json.array()
	for i = 1, n do
		local v = args[i]
		plain[i] = v == nil and json.null or strip_binary(v, nil, 0)
		args[i] = strip_binary(v, att, 0)
	end
	return att, json.encode(plain), unpack(args, 1, n)
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
	encode_args = encode_args,
	decode_args = decode_args,
	resolve_args = resolve_args,
}
