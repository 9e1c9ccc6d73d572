-- pins - pinned messages in a conversation (the plugin examples/README.md
-- writes step by step).
--   pin:add {conversationId, messageId}   -> pin:added to the conversation
--   pin:remove {conversationId, messageId} -> pin:removed
--   pin:list {conversationId}             -> ack {pins = [messageId, ...]}
--   pin:check(conversationId, messageId)  -> ack (err, pinned, position)

local MAX_PINS = 3

local function pins_of(conv)
	return parley.kv.get("pins:" .. conv) or {}
end

local function checked(sock, d)
	if type(d) ~= "table" or type(d.conversationId) ~= "string" then
		return nil, 400, "conversationId is required"
	end
	local _, conv = parley.store.message(d.messageId or "")
	if d.messageId and conv ~= d.conversationId then
		return nil, 404, "no such message in this conversation"
	end
	return d
end

return {
	events = {
		["pin:add"] = function(sock, d)
			local ok, status, message = checked(sock, d)
			if not ok then return nil, status, message end
			local pins = pins_of(d.conversationId)
			if #pins >= MAX_PINS then
				return nil, 409, "at most " .. MAX_PINS .. " pins per conversation"
			end
			pins[#pins + 1] = d.messageId
			parley.kv.set("pins:" .. d.conversationId, pins)
			parley.to("conversation:" .. d.conversationId):emit("pin:added",
				{ conversationId = d.conversationId, messageId = d.messageId, by = sock.userId })
			return { pins = pins }
		end,

		["pin:remove"] = function(sock, d)
			local ok, status, message = checked(sock, d)
			if not ok then return nil, status, message end
			local kept = parley.json.array({})
			for _, id in ipairs(pins_of(d.conversationId)) do
				if id ~= d.messageId then kept[#kept + 1] = id end
			end
			parley.kv.set("pins:" .. d.conversationId, kept)
			parley.to("conversation:" .. d.conversationId):emit("pin:removed",
				{ conversationId = d.conversationId, messageId = d.messageId, by = sock.userId })
			return { pins = kept }
		end,

		["pin:list"] = function(sock, d)
			local ok, status, message = checked(sock, d)
			if not ok then return nil, status, message end
			return { pins = parley.json.array(pins_of(d.conversationId)) }
		end,

		-- Several arguments each way, the answer error first as Node
		-- callbacks take it: socket.emit("pin:check", conv, id, (err,
		-- pinned, position) => ...).
		["pin:check"] = function(sock, conv, id)
			if type(conv) ~= "string" or type(id) ~= "string" then
				return "conversationId and messageId are required"
			end
			for i, pinned in ipairs(pins_of(conv)) do
				if pinned == id then
					return parley.null, true, i
				end
			end
			return parley.null, false
		end,
	},
}
