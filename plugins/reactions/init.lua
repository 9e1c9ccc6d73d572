-- reactions - one reaction per user per message:
--   reaction:add {conversationId, messageId, emoji}   (a new emoji replaces the old)
--   reaction:remove {conversationId, messageId}
-- -> message:reaction {conversationId, messageId, userId, emoji, action}
--    to the conversation (and its members). Reactions are stored with the
-- message ("reactions": {userId: emoji}) and come back with messages:sync.

local store = parley.store
local json = parley.json

local function room_of(conv)
	return "conversation:" .. conv
end

local function check(sock, d, need_emoji)
	if type(d) ~= "table" then
		return nil, 400, "payload must be an object"
	end
	for _, f in ipairs({ "conversationId", "messageId" }) do
		if type(d[f]) ~= "string" or d[f] == "" or #d[f] > 128 then
			return nil, 400, f .. " is required and must be a non-empty string"
		end
	end
	if need_emoji and (type(d.emoji) ~= "string" or d.emoji == ""
		or #d.emoji > config.max_emoji_bytes) then
		return nil, 400, "emoji must be a string of 1 to " .. config.max_emoji_bytes .. " bytes"
	end
	local member, registered = store.is_member(d.conversationId, sock.userId)
	if registered and not member then
		return nil, 403, "not a member of this conversation"
	end
	local rec, conv = store.message(d.messageId)
	if not rec or conv ~= d.conversationId then
		return nil, 404, "message " .. d.messageId .. " not found in this conversation"
	end
	return registered
end

local function set_reaction(sock, d, emoji)
	local registered, status, message = check(sock, d, emoji ~= nil)
	if registered == nil then
		return nil, status, message
	end
	-- The map lives in kv (reads see writes at once) and, for sync, with
	-- the message.
	local key = "r:" .. d.messageId
	local reactions = parley.kv.get(key) or {}
	if reactions[sock.userId] == emoji then
		return { success = true, changed = false }
	end
	reactions[sock.userId] = emoji
	local empty = next(reactions) == nil
	parley.kv.set(key, not empty and reactions or nil)
	store.annotate(d.messageId, "reactions", not empty and reactions or nil)
	local ok, err = store.wait()
	if not ok then
		return nil, store.failure(err, "the reaction could not be stored")
	end
	local b = parley.to(room_of(d.conversationId))
	if registered then
		for _, u in ipairs(store.members(d.conversationId)) do
			b:to("user:" .. u)
		end
	end
	b:emit("message:reaction", { conversationId = d.conversationId, messageId = d.messageId,
		userId = sock.userId, emoji = emoji or json.null,
		action = emoji and "add" or "remove" })
	return { success = true, changed = true }
end

return {
	events = {
		["reaction:add"] = function(sock, d)
			return set_reaction(sock, d, type(d) == "table" and d.emoji or "")
		end,
		["reaction:remove"] = function(sock, d)
			return set_reaction(sock, d, nil)
		end,
	},
}
