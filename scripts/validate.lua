-- validate.lua - payload checks before any handler: for every event, a 403
-- for a userId that is not the socket's own; for the conversation and
-- typing events, a 400 that names the field that is missing, mistyped or
-- too long. (messages.lua checks the message events itself, since its HTTP
-- routes take the same payloads.)

local MAX_ID = 128

local function id_field(data, field, optional)
	local v = data[field]
	if v == nil and optional then
		return true
	end
	if type(v) ~= "string" or v == "" then
		return nil, field .. " is required and must be a non-empty string"
	end
	if #v > MAX_ID then
		return nil, field .. " is longer than " .. MAX_ID .. " characters"
	end
	if v:find("\0", 1, true) then
		return nil, field .. " must not contain NUL"
	end
	return true
end

local function is_typing(data)
	if data.isTyping ~= nil and type(data.isTyping) ~= "boolean" then
		return nil, "isTyping must be a boolean"
	end
	return true
end

-- The checks of each event, in order; each returns true or nil, message.
local conversation = function(d) return id_field(d, "conversationId") end
local rules = {
	["conversation:join"] = { conversation },
	["conversation:leave"] = { conversation },
	["typing:start"] = { conversation, is_typing },
	["typing:stop"] = { conversation, is_typing },
}

return {
	priority = 50,

	filter = function(sock, event, data)
		local checks = rules[event]
		if checks then
			if type(data) ~= "table" or parley.json.is_array(data) then
				return nil, 400, "payload must be an object"
			end
			for _, check in ipairs(checks) do
				local ok, message = check(data)
				if not ok then
					return nil, 400, message
				end
			end
		end
		-- The authenticated user is the only identity a payload may name.
		if type(data) == "table" and data.userId ~= nil and data.userId ~= sock.userId then
			return nil, 403, "userId does not match the authenticated user"
		end
		return nil
	end,
}
