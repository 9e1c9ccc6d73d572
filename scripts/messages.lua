-- messages.lua - messages that are never lost (SPEC §3, §4, §5), over
-- Socket.IO, the plain WebSocket and the HTTP API alike:
--   message:send       stored durably before its ack; a repeated
--                      clientMessageId is acked again and creates nothing;
--                      message:received to the conversation and to its
--                      members' user rooms, each socket once
--   message:delivered, message:read, conversation:read
--                      per-recipient status that never goes back; when a
--                      message's status over all its recipients (the least
--                      advanced) moves, message:status to the conversation
--                      and the sender
--   messages:sync      a page of history with statuses: after a point, just
--                      before one, or the newest
--   conversations:list the user's conversations, latest activity first, with
--                      the last message and the unread count (the store's
--                      inbox); from then on conversation:updated to the
--                      socket that asked when one of them moves (not with
--                      subscribe = false, which also stops it)
--   presence:query     online, and last seen, of the users who share a
--                      conversation with the asker (config presence_query)
-- A conversation with registered members (PUT /api/conversations/{id}/
-- members) is for them only: when its members change, the sockets of those
-- left out leave its room (conversation:left, reason "removed"), and what it
-- sends reaches its members only. One without members is open: its
-- recipients are whoever is in its room when a message is sent, and whoever
-- marks it later. Every check comes before the store write it guards, and a
-- message that is not the asker's to see answers like one that does not
-- exist.

local store = parley.store
local json = parley.json
local NAMESPACE = "/messages"
local MAX_ID = 128
local MAX_IDS = 500
-- Both checked against messages.schema.lua, with its defaults filled in.
local MAX_CONTENT = config.max_content
-- Whose presence presence:query answers about: "shared" (the users who share
-- a conversation with the asker) or "everyone".
local PRESENCE_QUERY = config.presence_query

local TYPES = {
	text = true, image = true, video = true, audio = true, document = true,
	location = true, contact = true, sticker = true,
}

-- ---- payload checks: true, or nil and a message naming the field ----

local function id_field(d, field, optional)
	local v = d[field]
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

local function id_list(d, field)
	local v = d[field]
	if type(v) ~= "table" or not json.is_array(v) or #v == 0 then
		return nil, field .. " must be a non-empty array of ids"
	end
	if #v > MAX_IDS then
		return nil, field .. " has more than " .. MAX_IDS .. " entries"
	end
	for i = 1, #v do
		if type(v[i]) ~= "string" or v[i] == "" or #v[i] > MAX_ID or v[i]:find("\0", 1, true) then
			return nil, field .. "[" .. i .. "] must be a non-empty string of at most "
				.. MAX_ID .. " characters, without NUL"
		end
	end
	return true
end

local function content_field(d)
	local c, t = d.content, d.type
	if type(t) ~= "string" or not TYPES[t] then
		return nil, "type must be one of text, image, video, audio, document, location, "
			.. "contact, sticker"
	end
	if c == nil or c == json.null then
		return nil, "content is required"
	end
	if t == "text" then
		if type(c) ~= "string" or c == "" then
			return nil, "content must be a non-empty string for a text message"
		end
		if #c > MAX_CONTENT then
			return nil, "content is longer than " .. MAX_CONTENT .. " bytes"
		end
	elseif type(c) ~= "string" and type(c) ~= "table" then
		return nil, "content must be a string or an object"
	elseif parley.has_binary(c) then
		-- A client's Buffer: its bytes have no place in a JSON message.
		return nil, "content cannot hold a binary attachment: store the file elsewhere and "
			.. "send its URL"
	else
		local ok, text = pcall(json.encode, c)
		if not ok then
			return nil, "content has no JSON form"
		end
		if #text > MAX_CONTENT then
			return nil, "content is larger than " .. MAX_CONTENT .. " bytes"
		end
	end
	return true
end

local function limit_field(d)
	local v = d.limit
	if v ~= nil and (type(v) ~= "number" or v ~= math.floor(v) or v < 1 or v > MAX_IDS) then
		return nil, "limit must be an integer from 1 to " .. MAX_IDS
	end
	return true
end

local function field(name, optional)
	return function(d) return id_field(d, name, optional) end
end

-- A check that the payload names only the fields in `known` (a set): a
-- misspelt "befor" must not silently page from the start.
local function only(known)
	return function(d)
		for k in pairs(d) do
			if not known[k] then
				return nil, "unknown field " .. (type(k) == "string" and #k <= MAX_ID and k
					or "name") .. "; expected " .. known[1]
			end
		end
		return true
	end
end

-- A sync names one starting point at most: after, before, or latest.
local function sync_point(d)
	if d.latest ~= nil and type(d.latest) ~= "boolean" then
		return nil, "latest must be a boolean"
	end
	local n = (d.after ~= nil and 1 or 0) + (d.before ~= nil and 1 or 0)
		+ (d.latest and 1 or 0)
	if n > 1 then
		return nil, "after, before and latest exclude each other: name one"
	end
	return true
end

local INBOX_MAX = 100
local function inbox_limit(d)
	local v = d.limit
	if v ~= nil and (type(v) ~= "number" or v ~= math.floor(v) or v < 1 or v > INBOX_MAX) then
		return nil, "limit must be an integer from 1 to " .. INBOX_MAX
	end
	return true
end

local LIST_FIELDS = { "limit, before, subscribe", limit = true, before = true,
	subscribe = true, userId = true }

local function subscribe_field(d)
	if d.subscribe ~= nil and type(d.subscribe) ~= "boolean" then
		return nil, "subscribe must be a boolean"
	end
	return true
end

local SYNC_FIELDS = { "conversationId, after, before, latest, limit",
	conversationId = true, after = true, before = true, latest = true, limit = true,
	-- Any payload may name its sender (validate.lua holds it to the socket's).
	userId = true }

local checks = {
	send = { field("conversationId"), field("clientMessageId", true), content_field,
		field("replyTo", true) },
	mark = { field("conversationId"), function(d) return id_list(d, "messageIds") end },
	read = { field("conversationId"), field("upTo", true) },
	sync = { only(SYNC_FIELDS), field("conversationId"), field("after", true),
		field("before", true), sync_point, limit_field },
	presence = { function(d) return id_list(d, "userIds") end },
	list = { only(LIST_FIELDS), field("before", true), inbox_limit, subscribe_field },
}

-- Runs a list of checks on a payload: true, or nil, 400, message.
local function check(list, d)
	if type(d) ~= "table" or json.is_array(d) then
		return nil, 400, "payload must be an object"
	end
	for _, c in ipairs(list) do
		local ok, message = c(d)
		if not ok then
			return nil, 400, message
		end
	end
	return true
end

-- ---- the operations ----

local function room_of(conv)
	return "conversation:" .. conv
end

-- Whether the user may act in the conversation: true and whether it is
-- open; or nil, 403, message.
local function access(conv, user)
	local member, registered = store.is_member(conv, user)
	if registered and not member then
		return nil, 403, "not a member of this conversation"
	end
	return true, not registered
end

-- The users whose sockets are in the conversation's room.
local function users_in_room(conv)
	return parley.room_users(room_of(conv), NAMESPACE)
end

-- A failed write's status and message: 507 when the store is full (and
-- what is full), 503 when it cannot write.
local function store_error(err)
	return store.failure(err, "the message could not be stored")
end

-- What clients see of a sender: the given profile, completed by the stored
-- one (PUT /api/users/{id}).
local function sender_profile(id, given)
	local p = { id = id }
	given = given or {}
	p.name, p.avatar, p.phoneNumber = given.name, given.avatar, given.phoneNumber
	if not (p.name and p.avatar and p.phoneNumber) then
		local stored = store.profile(id)
		if stored then
			local t = json.decode(json.raw_text(stored)) or {}
			p.name = p.name or t.name
			p.avatar = p.avatar or t.avatar
			p.phoneNumber = p.phoneNumber or t.phoneNumber
		end
	end
	return p
end

-- The room of a user's sockets that follow its inbox: those that asked for
-- the list (conversations:list) and did not stop (subscribe = false). A
-- socket leaves it as it disconnects.
local function inbox_room(user)
	return "inbox:" .. user
end

-- Tells each of `users` whose inbox a socket here follows what it shows of
-- the conversation now (conversation:updated, the item conversations:list
-- gives: last message, unread count), on those sockets: another tab or
-- device that shows the list keeps it right. A user nobody follows costs
-- a room lookup, no store read: most sockets never show a chat list.
-- Users with the same item (after a message: the sender, and recipients by
-- what they had left unread) get it in one broadcast, encoded once.
local function tell_inbox(conv, users)
	local rooms, following = {}, {}
	for i, u in ipairs(users) do
		rooms[i] = inbox_room(u)
	end
	-- One question for all of them (in cluster mode one round trip to
	-- Redis, not one a participant).
	local sizes = parley.room_sizes(rooms, NAMESPACE)
	for i, u in ipairs(users) do
		if sizes[i] > 0 then
			following[#following + 1] = u
		end
	end
	if #following == 0 then
		return
	end
	for _, g in ipairs(store.inbox_updates(conv, following)) do
		local b = parley.of(NAMESPACE):to(inbox_room(g.users[1]))
		for i = 2, #g.users do
			b:to(inbox_room(g.users[i]))
		end
		b:emit("conversation:updated", g.item)
	end
end

-- Stores and announces a message. Returns the record, created, messageId,
-- timestamp; or nil, status, message.
local function send(sender_id, profile, d)
	local ok, open, message = access(d.conversationId, sender_id)
	if not ok then
		return nil, open, message
	end
	local conv = d.conversationId
	local rec, created, id, ts = store.send({
		conversationId = conv, senderId = sender_id, clientMessageId = d.clientMessageId,
		type = d.type, content = d.content, replyTo = d.replyTo,
		sender = sender_profile(sender_id, profile),
		recipients = not open and store.members(conv) or users_in_room(conv),
	})
	if not rec then
		return nil, store_error(created)
	end
	if created then
		-- The members as they are now, not before the store's wait: one
		-- removed meanwhile hears nothing more of the conversation.
		local b = parley.of(NAMESPACE):to(room_of(conv))
		local _, registered = store.is_member(conv, sender_id)
		if registered then
			for _, u in ipairs(store.members(conv)) do
				b:to("user:" .. u)
			end
		else
			b:to("user:" .. sender_id)
		end
		b:emit("message:received", rec)
		tell_inbox(conv, store.participants(conv))
	end
	return rec, created, id, ts
end

-- send() where every store call is a round trip (PostgreSQL): the same
-- checks, profile, recipients and announcement, with everything the store
-- knows of them asked in the send's own statement (store.send_as).
if store.send_as then
	send = function(sender_id, given, d)
		local conv = d.conversationId
		given = given or {}
		local rec, created, id, ts, _, members, participants, stale = store.send_as({
			conversationId = conv, senderId = sender_id, clientMessageId = d.clientMessageId,
			type = d.type, content = d.content, replyTo = d.replyTo,
			profile = { name = given.name, avatar = given.avatar,
				phoneNumber = given.phoneNumber },
			roomUsers = users_in_room(conv),
		})
		if rec == false then
			return nil, 403, "not a member of this conversation"
		end
		if not rec then
			return nil, store_error(created)
		end
		if created then
			if stale then
				-- Members set meanwhile: as they are now, as send_steps has them.
				local _, registered = store.is_member(conv, sender_id)
				members = registered and store.members(conv) or nil
				participants = store.participants(conv)
			end
			-- In store.participants' order (the store's is its update's).
			table.sort(participants)
			local b = parley.of(NAMESPACE):to(room_of(conv))
			if members then
				for _, u in ipairs(members) do
					b:to("user:" .. u)
				end
			else
				b:to("user:" .. sender_id)
			end
			b:emit("message:received", rec)
			tell_inbox(conv, participants)
		end
		return rec, created, id, ts
	end
end

-- Tells the conversation, and the sender while still in it, that a
-- message's status moved.
local function announce(change, by)
	local b = parley.of(NAMESPACE):to(room_of(change.conversationId))
	if access(change.conversationId, change.senderId) then
		b:to("user:" .. change.senderId)
	end
	b:emit("message:status", {
		messageId = change.messageId, conversationId = change.conversationId,
		status = change.status, updatedAt = change.updatedAt, userId = by,
	})
end

-- Sets `user`'s status of messages of one conversation; announces the moves
-- once durable. Returns how many, or nil, status, message.
local function mark(user, conv, ids, status)
	local ok, open, message = access(conv, user)
	if not ok then
		return nil, open, message
	end
	-- The store checks every id (a message of this conversation, addressed
	-- to the user) before it writes any: a refused list leaves no trace, and
	-- a message of another conversation is as absent as one never sent.
	local changes, why, id = store.set_status(ids, user, status, open, conv)
	if not changes then
		if why == "not a recipient" then
			return nil, 403, "message " .. id .. " is not addressed to you"
		end
		return nil, 404, "message " .. id .. " not found in this conversation"
	end
	local done, err = store.wait()
	if not done then
		return nil, store_error(err)
	end
	for _, change in ipairs(changes) do
		if change.changed then
			announce(change, user)
		end
	end
	if status == "read" then
		tell_inbox(conv, { user })
	end
	return #changes
end

-- The sequence number of message `id` in `conv`, or nil, 404, message.
local function seq_in(conv, id)
	local rec, rconv, _, seq = store.message(id)
	if not rec or rconv ~= conv then
		return nil, 404, "message " .. id .. " not found in this conversation"
	end
	return seq
end

-- Marks read everything up to a message (all when up_to is nil).
local function read_conversation(user, conv, up_to)
	local ok, open, message = access(conv, user)
	if not ok then
		return nil, open, message
	end
	local upto_seq
	if up_to then
		local seq, status, msg = seq_in(conv, up_to)
		if not seq then
			return nil, status, msg
		end
		upto_seq = seq
	end
	local changes, count = store.read(conv, user, upto_seq, open)
	local done, err = store.wait()
	if not done then
		return nil, store_error(err)
	end
	for _, change in ipairs(changes) do
		announce(change, user)
	end
	tell_inbox(conv, { user })
	return count
end

-- A page of history, oldest first, with statuses (d checked by
-- checks.sync): the messages after `after` (a message id; hasMore: newer
-- ones exist), or the `limit` just before `before`, or the newest with
-- `latest` (hasMore: older ones exist). `viewer` (nil for the API) does
-- not see what it deleted for itself.
local function history(d, viewer)
	local conv, limit = d.conversationId, d.limit or 50
	local point = d.after or d.before
	local seq = 0
	if point then
		local st, msg
		seq, st, msg = seq_in(conv, point)
		if not seq then
			return nil, st, msg
		end
	end
	if d.before or d.latest then
		return store.sync_before(conv, d.before and seq or nil, limit, viewer)
	end
	return store.sync(conv, seq, limit, viewer)
end

-- history() for a user: a members-only conversation's to its members.
local function sync(user, d)
	local ok, status, message = access(d.conversationId, user)
	if not ok then
		return nil, status, message
	end
	return history(d, user)
end

local function presence_of(user)
	local online = parley.user_sockets(user, NAMESPACE) > 0
	local seen = store.last_seen(user)
	return { userId = user, online = online,
		lastSeen = seen and store.iso_time(seen) or json.null }
end

-- The conversation id of a room "conversation:{id}" (one a conversation:join
-- could have made), or nil.
local function conversation_of_room(room)
	local conv = room:sub(1, 13) == "conversation:" and room:sub(14)
	if conv and id_field({ c = conv }, "c") then
		return conv
	end
	return nil
end

-- The users in the open conversations whose rooms the user's sockets are
-- in, as a set.
local function co_joined(user)
	local users, seen = {}, {}
	for _, sid in ipairs(parley.room_sockets("user:" .. user, NAMESPACE)) do
		local s = parley.socket(sid)
		for _, room in ipairs(s and s:rooms() or {}) do
			local conv = not seen[room] and conversation_of_room(room)
			if conv then
				seen[room] = true
				local _, registered = store.is_member(conv, user)
				if not registered then
					for _, u in ipairs(parley.room_users(room, NAMESPACE)) do
						users[u] = true
					end
				end
			end
		end
	end
	return users
end

-- A function telling whether `asker` may see a user's presence: the asker
-- and those who share a conversation with the asker (both registered
-- members of one, or both with a socket in an open one's room).
local function presence_visible(asker)
	if PRESENCE_QUERY == "everyone" then
		return function() return true end
	end
	local mine, mine_set, joined = store.conversations_of(asker), {}, nil
	for _, c in ipairs(mine) do
		mine_set[c] = true
	end
	return function(user)
		if user == asker then
			return true
		end
		-- Whichever of the two lists is likely shorter is walked.
		if #mine <= 32 then
			for _, c in ipairs(mine) do
				if store.is_member(c, user) then
					return true
				end
			end
		else
			for _, c in ipairs(store.conversations_of(user)) do
				if mine_set[c] then
					return true
				end
			end
		end
		joined = joined or co_joined(asker)
		return joined[user] == true
	end
end

-- The conversation's members changed: the sockets of those no longer
-- allowed in it leave its room (in every namespace) and are told, with
-- conversation:left {conversationId, success, reason = "removed"}. It runs
-- as the membership is written, before anything waits, so no event sees
-- the new members beside the old room.
local function evict(conv)
	local room = room_of(conv)
	for _, nsp in ipairs(parley.namespaces()) do
		for _, sid in ipairs(parley.room_sockets(room, nsp)) do
			local s = parley.socket(sid)
			if s and not access(conv, s.userId) then
				s:leave(room)
				s:emit("conversation:left", { conversationId = conv, success = true,
					reason = "removed" })
			end
		end
	end
end

-- An operation's result as a handler's: nil, status, message passes through.
local function answer(ok, ...)
	if ok == nil then
		return nil, ...
	end
	return ok, ...
end

-- ---- the HTTP API: request bodies checked like socket payloads ----

local function body_of(req, list)
	local d = req.body
	if d == nil then
		return nil, 400, "a JSON body is required"
	end
	local ok, status, message = check(list, d)
	if not ok then
		return nil, status, message
	end
	return d
end

local function with_conv(req, list)
	local d = req.body
	if d == nil then
		d = {}
	end
	if type(d) ~= "table" or json.is_array(d) then
		return nil, 400, "the body must be a JSON object"
	end
	d.conversationId = req.params.id
	local ok, status, message = check(list, d)
	if not ok then
		return nil, status, message
	end
	return d
end

local user_check = { field("userId") }

return {
	namespaces = { NAMESPACE },

	events = {
		["message:send"] = function(sock, d)
			local ok, status, message = check(checks.send, d)
			if not ok then
				return nil, status, message
			end
			local rec, created, id, ts = send(sock.userId, sock.user, d)
			if not rec then
				return nil, created, id
			end
			return { messageId = id, status = "sent", timestamp = ts }
		end,

		["message:delivered"] = function(sock, d)
			local ok, status, message = check(checks.mark, d)
			if not ok then
				return nil, status, message
			end
			local n, st, msg = mark(sock.userId, d.conversationId, d.messageIds, "delivered")
			if not n then
				return nil, st, msg
			end
			return { success = true, updated = n }
		end,

		["message:read"] = function(sock, d)
			local ok, status, message = check(checks.mark, d)
			if not ok then
				return nil, status, message
			end
			local n, st, msg = mark(sock.userId, d.conversationId, d.messageIds, "read")
			if not n then
				return nil, st, msg
			end
			return { success = true, updated = n }
		end,

		["conversation:read"] = function(sock, d)
			local ok, status, message = check(checks.read, d)
			if not ok then
				return nil, status, message
			end
			local n, st, msg = read_conversation(sock.userId, d.conversationId, d.upTo)
			if not n then
				return nil, st, msg
			end
			return { success = true, updated = n }
		end,

		["messages:sync"] = function(sock, d)
			local ok, status, message = check(checks.sync, d)
			if not ok then
				return nil, status, message
			end
			return answer(sync(sock.userId, d))
		end,

		-- The user's conversations, latest activity first, a page at a time.
		-- The socket that asks follows the list from then on (conversation:
		-- updated, until it disconnects), unless it says subscribe = false,
		-- which also ends a subscription. The page and the join happen in one
		-- go, with no wait between them: no change falls in between.
		["conversations:list"] = function(sock, d)
			local ok, status, message = check(checks.list, d)
			if not ok then
				return nil, status, message
			end
			local page = store.inbox(sock.userId, d.before, d.limit or 20)
			if not page then
				return nil, 404, "conversation " .. d.before .. " is not in your list"
			end
			if d.subscribe == false then
				sock:leave(inbox_room(sock.userId))
			else
				local joined, err = sock:join(inbox_room(sock.userId))
				if not joined then
					return nil, err.status or 403, "cannot follow the list: "
						.. (err.message or tostring(err))
				end
			end
			return page
		end,

		["presence:query"] = function(sock, d)
			local ok, status, message = check(checks.presence, d)
			if not ok then
				return nil, status, message
			end
			-- Users the asker shares no conversation with are left out:
			-- nothing is said about them, not even whether they exist.
			local visible = presence_visible(sock.userId)
			local users = json.array({})
			for _, u in ipairs(d.userIds) do
				if visible(u) then
					users[#users + 1] = presence_of(u)
				end
			end
			return { users = users }
		end,
	},

	routes = {
		-- A message from senderId, as if sent over a socket.
		["POST /api/conversations/:id/messages"] = function(req)
			local d, status, message = with_conv(req, checks.send)
			if not d then
				return nil, status, message
			end
			local ok, err = id_field(d, "senderId")
			if not ok then
				return nil, 400, err
			end
			local rec, created, id, ts = send(d.senderId, d.sender, d)
			if not rec then
				return nil, created, id
			end
			return created and 201 or 200, rec
		end,

		["GET /api/conversations/:id/messages"] = function(req)
			-- The query as a sync payload: its parameters are the payload's
			-- fields (an unknown one is refused alike), in text.
			local d = {}
			for k, v in pairs(req.query) do
				d[k] = v
			end
			-- The path names the conversation, the key holder no user.
			for _, k in ipairs({ "conversationId", "userId" }) do
				if d[k] ~= nil then
					return nil, 400, "unknown field " .. k .. "; expected after, before, "
						.. "latest, limit"
				end
			end
			d.conversationId = req.params.id
			if d.limit ~= nil then
				d.limit = tonumber(d.limit)
				if not d.limit then
					return nil, 400, "limit must be an integer from 1 to " .. MAX_IDS
				end
			end
			if d.latest ~= nil then
				if d.latest ~= "true" and d.latest ~= "false" then
					return nil, 400, "latest must be true or false"
				end
				d.latest = d.latest == "true"
			end
			local ok, status, message = check(checks.sync, d)
			if not ok then
				return nil, status, message
			end
			-- The API sees every conversation: it answers for the backend.
			return answer(history(d, nil))
		end,

		["GET /api/users/:id/conversations"] = function(req)
			local ok, err = id_field(req.params, "id")
			if not ok then
				return nil, 400, "the user " .. err
			end
			local d = {}
			for k, v in pairs(req.query) do
				d[k] = v
			end
			-- The path names the user; there is no socket to subscribe.
			for _, k in ipairs({ "userId", "subscribe" }) do
				if d[k] ~= nil then
					return nil, 400, "unknown field " .. k .. "; expected limit, before"
				end
			end
			if d.limit ~= nil then
				d.limit = tonumber(d.limit)
				if not d.limit then
					return nil, 400, "limit must be an integer from 1 to " .. INBOX_MAX
				end
			end
			local checked, status, message = check(checks.list, d)
			if not checked then
				return nil, status, message
			end
			local page = store.inbox(req.params.id, d.before, d.limit or 20)
			if not page then
				return nil, 404, "conversation " .. d.before .. " is not in the user's list"
			end
			return page
		end,

		["PATCH /api/messages/:id/status"] = function(req)
			local d, status, message = body_of(req, user_check)
			if not d then
				return nil, status, message
			end
			if d.status ~= "delivered" and d.status ~= "read" then
				return nil, 400, "status must be delivered or read"
			end
			local rec, conv = store.message(req.params.id)
			if not rec then
				return nil, 404, "message " .. req.params.id .. " not found"
			end
			local n, st, msg = mark(d.userId, conv, { req.params.id }, d.status)
			if not n then
				return nil, st, msg
			end
			local now = store.message(req.params.id)
			return now
		end,

		["POST /api/conversations/:id/read"] = function(req)
			local d, status, message = with_conv(req, { field("conversationId"), field("upTo", true),
				field("userId") })
			if not d then
				return nil, status, message
			end
			local n, st, msg = read_conversation(d.userId, d.conversationId, d.upTo)
			if not n then
				return nil, st, msg
			end
			return { success = true, updated = n }
		end,

		["PUT /api/conversations/:id/members"] = function(req)
			local d, status, message = body_of(req, { function(b) return id_list(b, "members") end })
			if not d then
				return nil, status, message
			end
			if #req.params.id > MAX_ID then
				return nil, 400, "the conversation id is longer than " .. MAX_ID .. " characters"
			end
			store.set_members(req.params.id, d.members)
			evict(req.params.id)
			local done, err = store.wait()
			if not done then
				return nil, store_error(err)
			end
			tell_inbox(req.params.id, store.members(req.params.id))
			return { conversationId = req.params.id, members = store.members(req.params.id) }
		end,

		["GET /api/conversations/:id/members"] = function(req)
			local ok, err = id_field(req.params, "id")
			if not ok then
				return nil, 400, "the conversation " .. err
			end
			return { conversationId = req.params.id, members = store.members(req.params.id) }
		end,

		["GET /api/users/online"] = function()
			return { users = parley.online_users(NAMESPACE) }
		end,

		["GET /api/users/:id/presence"] = function(req)
			local ok, err = id_field(req.params, "id")
			if not ok then
				return nil, 400, "the user " .. err
			end
			local p = presence_of(req.params.id)
			p.sockets = parley.user_sockets(req.params.id, NAMESPACE)
			return p
		end,

		["PUT /api/users/:id"] = function(req)
			local d = req.body
			if type(d) ~= "table" or json.is_array(d) then
				return nil, 400, "the body must be a JSON object"
			end
			-- The store raises for an id it cannot hold: a 400 here.
			local ok, err = id_field(req.params, "id")
			if not ok then
				return nil, 400, "the user " .. err
			end
			local profile = {}
			for _, f in ipairs({ "name", "phoneNumber", "avatar" }) do
				if d[f] ~= nil then
					if type(d[f]) ~= "string" or #d[f] > 1024 then
						return nil, 400, f .. " must be a string of at most 1024 characters"
					end
					profile[f] = d[f]
				end
			end
			store.set_profile(req.params.id, profile)
			local done, err = store.wait()
			if not done then
				return nil, store_error(err)
			end
			profile.id = req.params.id
			return profile
		end,
	},
}
