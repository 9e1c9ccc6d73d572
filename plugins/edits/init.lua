-- edits - editing and deleting sent messages:
--   message:edit {messageId, content}
--       the sender (while still allowed in the conversation), within
--       window_ms: the stored message takes the new content (and
--       editedAt); message:edited {conversationId, messageId, content,
--       editedAt} to the conversation
--   message:delete {messageId, forEveryone}
--       forEveryone (the sender, within window_ms): the message becomes a
--       tombstone (content null, deleted true); message:deleted to the
--       conversation. Otherwise deleted for the one who asks: sync leaves it
--       out for them, and their other devices get message:deleted.
-- messages:sync returns edited text and tombstones. A message of a
-- members-only conversation the user is not in is "not found", as if it
-- did not exist.

local store = parley.store
local json = parley.json

local function record_of(id)
	if type(id) ~= "string" or #id ~= 16 then
		return nil
	end
	local raw = store.message(id)
	return raw and json.decode(json.raw_text(raw))
end

-- The message `id` if the user may see it: one of a members-only
-- conversation the user is not in answers like one that does not exist
-- (ids are time-derived, and guessable).
local function visible_record(sock, id)
	local m = record_of(id)
	if not m then
		return nil
	end
	local member, registered = store.is_member(m.conversationId, sock.userId)
	if registered and not member then
		return nil
	end
	return m
end

-- The conversation's room and its registered members' user rooms.
local function audience(conv)
	local b = parley.to("conversation:" .. conv)
	for _, u in ipairs(store.members(conv)) do
		b:to("user:" .. u)
	end
	return b
end

-- The message if `sock` may change it for everyone now, else nil, status, msg.
local function own_recent(sock, id)
	local m = visible_record(sock, id)
	if not m then
		return nil, 404, "message not found"
	end
	if m.senderId ~= sock.userId then
		return nil, 403, "only the sender may change a message"
	end
	if m.deleted then
		return nil, 410, "the message was deleted"
	end
	-- timestamp is ISO 8601 UTC with milliseconds.
	local y, mo, d, h, mi, s, ms = m.timestamp:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)%.(%d+)Z$")
	local days = function(yy, mm, dd) -- days since 1970-01-01 (civil calendar)
		yy = mm <= 2 and yy - 1 or yy
		local era = math.floor(yy / 400)
		local yoe = yy - era * 400
		local doy = math.floor((153 * (mm + (mm > 2 and -3 or 9)) + 2) / 5) + dd - 1
		local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
		return era * 146097 + doe - 719468
	end
	local sent = ((days(tonumber(y), tonumber(mo), tonumber(d)) * 24 + h) * 60 + mi) * 60000
		+ s * 1000 + ms
	if parley.now() - sent > config.window_ms then
		return nil, 403, "the time to change this message has passed"
	end
	return m
end

return {
	events = {
		["message:edit"] = function(sock, d)
			if type(d) ~= "table" then
				return nil, 400, "payload must be an object"
			end
			local m, status, message = own_recent(sock, d.messageId)
			if not m then
				return nil, status, message
			end
			local c = d.content
			if m.type == "text" and (type(c) ~= "string" or c == "") then
				return nil, 400, "content must be a non-empty string for a text message"
			end
			if parley.has_binary(c) then
				return nil, 400, "content cannot hold a binary attachment"
			end
			if c == nil or #json.encode(c) > config.max_content then
				return nil, 400, "content is required and at most " .. config.max_content .. " bytes"
			end
			local edited_at = store.edit(d.messageId, c)
			local ok, err = store.wait()
			if not ok then
				return nil, store.failure(err, "the edit could not be stored")
			end
			audience(m.conversationId):emit("message:edited", { conversationId = m.conversationId,
				messageId = d.messageId, content = c, editedAt = edited_at })
			return { success = true, editedAt = edited_at }
		end,

		["message:delete"] = function(sock, d)
			if type(d) ~= "table" then
				return nil, 400, "payload must be an object"
			end
			if d.forEveryone then
				local m, status, message = own_recent(sock, d.messageId)
				if not m then
					return nil, status, message
				end
				store.edit(d.messageId, nil)
				local ok, err = store.wait()
				if not ok then
					return nil, store.failure(err, "the deletion could not be stored")
				end
				audience(m.conversationId):emit("message:deleted", { conversationId = m.conversationId,
					messageId = d.messageId, forEveryone = true })
				return { success = true }
			end
			local m = visible_record(sock, d.messageId)
			if not m then
				return nil, 404, "message not found"
			end
			store.hide(d.messageId, sock.userId)
			local ok, err = store.wait()
			if not ok then
				return nil, store.failure(err, "the deletion could not be stored")
			end
			parley.to("user:" .. sock.userId):except(sock):emit("message:deleted",
				{ conversationId = m.conversationId, messageId = d.messageId, forEveryone = false })
			return { success = true }
		end,
	},
}
