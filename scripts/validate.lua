-- validate.lua - payload checks shared by the chat events: a clear 400 that
-- names the field, and a 403 for a userId that is not the socket's own.

local MAX_ID = 128

local function check_id(data, field)
	local v = data[field]
	if type(v) ~= "string" or v == "" then
		return nil, 400, field .. " is required and must be a non-empty string"
	end
	if #v > MAX_ID then
		return nil, 400, field .. " is longer than " .. MAX_ID .. " characters"
	end
	return true
end

-- Events that carry a conversationId, and what else they need.
local rules = {
	["conversation:join"] = {},
	["conversation:leave"] = {},
	["typing:start"] = { typing = true },
	["typing:stop"] = { typing = true },
}

return {
	priority = 50,

	filter = function(sock, event, data)
		local rule = rules[event]
		if not rule then
			return nil
		end
		if type(data) ~= "table" then
			return nil, 400, "payload must be an object"
		end
		local ok, status, message = check_id(data, "conversationId")
		if not ok then
			return nil, status, message
		end
		if data.userId ~= nil and data.userId ~= sock.userId then
			return nil, 403, "userId does not match the authenticated user"
		end
		if rule.typing and data.isTyping ~= nil and type(data.isTyping) ~= "boolean" then
			return nil, 400, "isTyping must be a boolean"
		end
		return data
	end,
}
