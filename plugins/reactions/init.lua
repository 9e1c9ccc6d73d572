-- reactions - one reaction per user per message:
--   reaction:add {conversationId, messageId, emoji}   (a new emoji replaces the old)
--   reaction:remove {conversationId, messageId}
-- -> message:reaction {conversationId, messageId, userId, emoji, action}
--    to the conversation (and its members). Reactions are stored with the
-- message ("reactions": {userId: emoji}) and come back with messages:sync.
-- Reactions to one message made at the same moment, on one node or on
-- several, are all kept: the map changes only by kv.cas.

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

-- The map of a message's reactions, as kv holds it: JSON text under
-- "rx:<id>" (kv.cas compares texts), or, written before that, a table under
-- "r:<id>". Returns the map and the text it was read as (nil: none yet).
local function read_map(id)
	local text = parley.kv.get("rx:" .. id)
	if text ~= nil then
		return json.decode(text), text
	end
	return parley.kv.get("r:" .. id) or {}, nil
end

local function encode_map(map)
	return next(map) ~= nil and json.encode(map) or "{}"
end

-- Sets the user's reaction in one step against every other node's: read,
-- change, write only if nobody wrote in between (kv.cas), else again. The
-- map's answer (`changed`, the map written) or nil, err.
local function swap(id, user, emoji)
	for _ = 1, 32 do
		local map, text = read_map(id)
		if map[user] == emoji then
			return false, map
		end
		map[user] = emoji
		local done, err = parley.kv.cas("rx:" .. id, text, encode_map(map))
		if done == nil then
			return nil, err
		end
		if done then
			return true, map
		end
	end
	return nil, "too many reactions to this message at once: try again"
end

local function set_reaction(sock, d, emoji)
	local registered, status, message = check(sock, d, emoji ~= nil)
	if registered == nil then
		return nil, status, message
	end
	local changed, map = swap(d.messageId, sock.userId, emoji)
	if changed == nil then
		return nil, 503, map
	end
	if not changed then
		return { success = true, changed = false }
	end
	-- The message carries the map too, for messages:sync. Two nodes that
	-- changed it at once may write it in the other order: each writes again
	-- what kv holds now until what it wrote is what kv holds, so the last
	-- write is the newest map.
	local written = encode_map(map)
	for _ = 1, 32 do
		store.annotate(d.messageId, "reactions", next(map) ~= nil and map or nil)
		local ok, err = store.wait()
		if not ok then
			return nil, store.failure(err, "the reaction could not be stored")
		end
		local now, text = read_map(d.messageId)
		if (text or encode_map(now)) == written then
			break
		end
		map, written = now, text or encode_map(now)
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
