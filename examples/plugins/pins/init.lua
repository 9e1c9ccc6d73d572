-- pins - pinned messages in a conversation (the plugin examples/README.md
-- writes step by step).
--   pin:add {conversationId, messageId}   -> pin:added to the conversation
--   pin:remove {conversationId, messageId} -> pin:removed
--   pin:list {conversationId}             -> ack {pins = [messageId, ...]}
--   pin:check(conversationId, messageId)  -> ack (err, pinned, position)
-- A conversation with registered members is theirs alone: anyone else is
-- refused with 403 before anything is read or written.

local MAX_PINS = 3
local MAX_ID = 128

local function pins_of(conv)
	return parley.kv.get("pins:" .. conv) or {}
end

-- The payload, once the user may touch the conversation's pins; or nil,
-- status, message. `needs_message`: pin:add and pin:remove name one.
local function checked(sock, d, needs_message)
	if type(d) ~= "table" or type(d.conversationId) ~= "string" or d.conversationId == ""
		or #d.conversationId > MAX_ID then
		return nil, 400, "conversationId is required (at most " .. MAX_ID .. " characters)"
	end
	-- Who may: in a conversation with registered members, its members only.
	-- The same answer whatever the conversation holds, so a refusal says
	-- nothing about its messages or pins.
	local member, registered = parley.store.is_member(d.conversationId, sock.userId)
	if registered and not member then
		return nil, 403, "not a member of this conversation"
	end
	if needs_message then
		if type(d.messageId) ~= "string" or d.messageId == "" or #d.messageId > MAX_ID then
			return nil, 400, "messageId is required"
		end
		local _, conv = parley.store.message(d.messageId)
		if conv ~= d.conversationId then
			return nil, 404, "no such message in this conversation"
		end
	end
	return d
end

return {
	events = {
		["pin:add"] = function(sock, d)
			local ok, status, message = checked(sock, d, true)
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
			local ok, status, message = checked(sock, d, true)
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
			local ok, status, message = checked(sock, d, false)
			if not ok then return nil, status, message end
			return { pins = parley.json.array(pins_of(d.conversationId)) }
		end,

		-- Several arguments each way, the answer error first as Node
		-- callbacks take it: socket.emit("pin:check", conv, id, (err,
		-- pinned, position) => ...).
		["pin:check"] = function(sock, conv, id)
			if type(id) ~= "string" then
				return "conversationId and messageId are required"
			end
			-- The same check as the other events: an error first, here.
			local ok, _, message = checked(sock, { conversationId = conv }, false)
			if not ok then
				return message
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
