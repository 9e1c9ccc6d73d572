-- chat.lua - conversations, typing and presence:
--   conversation:join / :leave   the room conversation:{id} (members only,
--                                when the conversation has registered members)
--   typing:start / :stop         relayed to the room but the sender, with the
--                                user, from a socket in the room; a typing
--                                not refreshed in time ends
--   user:online / user:offline   on a user's first socket, and after the last
--                                closes and a grace period passes (a quick
--                                reconnect fires neither), to the sockets that
--                                share a conversation with the user; the time
--                                they went is kept as lastSeen (at shutdown
--                                too, for those online or in the grace period)
--                                In cluster mode the cluster decides (Redis,
--                                core/cluster/presence.c): over every node's
--                                sockets, each once; this script tells what it
--                                is handed in its presence hook.
--
-- Who is typing and who is about to go offline is shared state
-- (parley.shared), so a reload of this script takes it over. Each kind is
-- bounded: a typing needs its socket in the room (so there are no more than
-- room memberships, which PARLEY_MAX_ROOMS bounds), a leaving entry lasts the
-- grace period, and the conversations remembered for a user are forgotten as
-- the user leaves them and pruned to those the user's sockets are in.

local store = parley.store
-- Checked against chat.schema.lua, with its defaults filled in.
local TYPING_TTL_MS = config.typing_ttl_ms
local GRACE_MS = config.presence_grace_ms
local SWEEP_MS = config.sweep_ms
local NAMESPACE = "/messages"
local MAX_ID = 128 -- the longest conversation id (validate.lua)
-- A sweep tells at most this many users' offline; the rest wait for the
-- next one, so a crowd leaving at once never makes one timer run long.
local OFFLINE_PER_SWEEP = 500
-- A user's remembered conversations are pruned when they reach this many,
-- or twice as many as the last pruning kept.
local PRUNE_AT = 64
-- Cluster mode: the first and last socket anywhere are the cluster's to
-- decide (docs/cluster.md).
local CLUSTER = parley.cluster_presence

-- "conversationId\0userId" -> { expires, conv, user, sid }
local typing = parley.shared("typing")
-- userId -> { at (when offline takes effect), gone (when the last socket
-- closed) }
local leaving = parley.shared("leaving")
-- userId -> the conversations the user's sockets joined, remembered after
-- a socket goes while others stay (for user:offline): one conversation id,
-- or a set of them ({ id -> true }) once there are two. Most users are in
-- one conversation at a time, and a table per idle user would cost more
-- than the string. Leaving a conversation forgets it.
local joined = parley.shared("joined")
-- userId -> { n = the size of the user's set in `joined`, prune = the size
-- at which it is pruned next }
local joined_size = parley.shared("joined_size")

local function room_of(conversation_id)
	return "conversation:" .. conversation_id
end

local function has_joined(user, conv)
	local j = joined[user]
	return j == conv or (type(j) == "table" and j[conv] == true)
end

local function forget_user(user)
	joined[user] = nil
	joined_size[user] = nil
end

-- Whether any socket of the user (on NAMESPACE) is in the room.
local function user_in_room(user, room)
	for _, sid in ipairs(parley.room_sockets("user:" .. user, NAMESPACE)) do
		local s = parley.socket(sid)
		if s and s:in_room(room) then
			return true
		end
	end
	return false
end

-- Keeps of the user's set only the conversations its sockets are in now
-- (those it went on remembering for sockets gone since are dropped: their
-- rooms miss the user's user:offline, which is the price of the bound).
local function prune_joined(user, sock)
	local set, n = {}, 0
	local function keep(s)
		for _, room in ipairs(s:rooms()) do
			-- Only the rooms conversation:join makes (the store refuses
			-- other names; a plugin may join any room).
			local conv = room:sub(1, 13) == "conversation:" and room:sub(14)
			if conv and #conv >= 1 and #conv <= MAX_ID and not conv:find("\0", 1, true)
				and not set[conv] then
				set[conv] = true
				n = n + 1
			end
		end
	end
	keep(sock)
	for _, sid in ipairs(parley.room_sockets("user:" .. user, NAMESPACE)) do
		local s = parley.socket(sid)
		if s and s ~= sock then
			keep(s)
		end
	end
	joined[user] = set
	joined_size[user] = { n = n, prune = math.max(PRUNE_AT, 2 * n) }
end

local function add_joined(sock, conv)
	local user = sock.userId
	local j = joined[user]
	if j == nil then
		joined[user] = conv
	elseif type(j) == "string" then
		if j ~= conv then
			joined[user] = { [j] = true, [conv] = true }
			joined_size[user] = { n = 2, prune = PRUNE_AT }
		end
	elseif not j[conv] then
		j[conv] = true
		local size = joined_size[user]
		if not size then -- a set a version before this one began
			size = { n = 0, prune = PRUNE_AT }
			for _ in pairs(j) do
				size.n = size.n + 1
			end
			joined_size[user] = size
		else
			size.n = size.n + 1
		end
		if size.n >= size.prune then
			prune_joined(user, sock)
		end
	end
end

-- The user's sockets are all out of the conversation's room: forget it.
local function forget_joined(user, conv)
	local j = joined[user]
	if j == conv then
		forget_user(user)
	elseif type(j) == "table" and j[conv] then
		j[conv] = nil
		local size = joined_size[user]
		if size then
			size.n = size.n - 1
			if size.n <= 0 then
				forget_user(user)
			end
		end
	end
end

-- May `user` be in `conv`? Registered conversations are for members only.
local function allowed(conv, user)
	local member, registered = store.is_member(conv, user)
	return member or not registered
end

-- The conversations a user shares with others: registered memberships and
-- the conversations the user's sockets joined (while still allowed in: a
-- member removed since has nobody there to tell).
local function conversations_of(user)
	local set, list = {}, {}
	for _, c in ipairs(store.conversations_of(user)) do
		set[c] = true
	end
	local j = joined[user]
	if type(j) == "string" then
		set[j] = allowed(j, user) or nil
	elseif j then
		for c in pairs(j) do
			set[c] = set[c] or allowed(c, user) or nil
		end
	end
	for c in pairs(set) do
		list[#list + 1] = c
	end
	return list
end

-- Tells those who share a conversation with the user: the sockets in its
-- rooms, and the registered members wherever they are (each socket once).
local function tell(event, user, convs)
	if #convs == 0 then
		return
	end
	local b = parley.of(NAMESPACE):to(room_of(convs[1]))
	for i, conv in ipairs(convs) do
		if i > 1 then
			b:to(room_of(conv))
		end
		for _, member in ipairs(store.members(conv)) do
			b:to("user:" .. member)
		end
	end
	b:except("user:" .. user):emit(event, { userId = user })
end

-- Tells the room a typing indicator ended; the typer's socket is spared.
local function end_typing(key)
	local t = typing[key]
	if not t then
		return
	end
	typing[key] = nil
	local b = parley.of(NAMESPACE):to(room_of(t.conv))
	local typer = parley.socket(t.sid)
	if typer then
		b:except(typer)
	end
	b:emit("typing:stop", { conversationId = t.conv, userId = t.user, isTyping = false })
end

-- Who is told is decided now, not when the last socket went: membership
-- may have changed during the grace period.
local function go_offline(user, entry)
	local convs = conversations_of(user)
	-- (In cluster mode a new grace may have begun while this one was
	-- confirmed: that one stays.)
	if leaving[user] == entry then
		leaving[user] = nil
	end
	forget_user(user)
	store.set_last_seen(user, entry.gone)
	tell("user:offline", user, convs)
end

-- Cluster mode: the graces this node owns that are over, asked of the
-- cluster at once (one Redis call); those it confirms (no socket anywhere,
-- nobody back) are told offline here, and only here.
local function expire_due(due)
	local users = {}
	for user in pairs(due) do
		users[#users + 1] = user
	end
	for _, user in ipairs(parley.presence_expire(users, NAMESPACE)) do
		go_offline(user, due[user])
	end
end

local function sweep()
	local now = parley.now()
	for key, t in pairs(typing) do
		if t.expires <= now then
			end_typing(key)
		end
	end
	local told, due = 0, nil
	for user, entry in pairs(leaving) do
		if entry.at <= now then
			if CLUSTER then
				-- Out of the table before the wait: the next sweep
				-- does not ask again.
				leaving[user] = nil
				due = due or {}
				due[user] = entry
			else
				go_offline(user, entry)
			end
			told = told + 1
			if told >= OFFLINE_PER_SWEEP then
				break
			end
		end
	end
	if due then
		expire_due(due)
	end
end

return {
	namespaces = { NAMESPACE },

	load = function()
		parley.timer(SWEEP_MS, sweep, true)
	end,

	-- The server is stopping, and the sweep will not run again: everyone
	-- still in the grace period (by now, everyone who was online: the drain
	-- disconnected them) gets the time they went as lastSeen, or it would be
	-- lost. Nobody is left to tell they went offline.
	shutdown = function()
		for user, entry in pairs(leaving) do
			leaving[user] = nil
			forget_user(user)
			store.set_last_seen(user, entry.gone)
		end
	end,

	-- Cluster mode: the cluster decided (core/cluster/presence.c). A first
	-- socket anywhere is told here; a last one gone starts the grace on
	-- this node, which alone may end it (sweep); back during the grace:
	-- nothing to tell.
	presence = function(change)
		if change.namespace ~= NAMESPACE then
			return
		end
		local user = change.userId
		if change.state == "online" then
			leaving[user] = nil
			tell("user:online", user, conversations_of(user))
		elseif change.state == "leaving" then
			leaving[user] = { at = parley.now() + GRACE_MS, gone = change.gone }
		elseif change.state == "back" then
			leaving[user] = nil
		end
	end,

	connected = function(sock)
		-- A recovered socket never went, for presence: it was held. In
		-- cluster mode the presence hook tells.
		if CLUSTER or sock.namespace ~= NAMESPACE or sock.recovered
			or parley.user_sockets(sock.userId, NAMESPACE) ~= 1 then
			return
		end
		-- Back within the grace period: as if never gone.
		if leaving[sock.userId] then
			leaving[sock.userId] = nil
			return
		end
		tell("user:online", sock.userId, conversations_of(sock.userId))
	end,

	disconnect = function(sock)
		if sock.namespace ~= NAMESPACE then
			return
		end
		-- The socket is still counted while its disconnect hooks run.
		-- Typings are this node's (their sockets are here).
		if parley.local_user_sockets(sock.userId, NAMESPACE) ~= 1 then
			return
		end
		for key, t in pairs(typing) do
			if t.user == sock.userId then
				end_typing(key)
			end
		end
		if CLUSTER then
			return
		end
		local now = parley.now()
		local entry = { at = now + GRACE_MS, gone = now }
		if GRACE_MS <= 0 then
			go_offline(sock.userId, entry)
		else
			leaving[sock.userId] = entry
		end
	end,

	events = {
		["conversation:join"] = function(sock, data)
			local conv = data.conversationId
			if not allowed(conv, sock.userId) then
				return nil, 403, "not a member of this conversation"
			end
			local ok, err = sock:join(room_of(conv))
			if not ok then
				return nil, err.status or 403, err.message or tostring(err)
			end
			-- In an open conversation, those in it learn the user is here
			-- when the user first joins it (nobody knew to tell them at
			-- connect time).
			if not has_joined(sock.userId, conv) then
				add_joined(sock, conv)
				local _, registered = store.is_member(conv, sock.userId)
				if not registered then
					sock:to(room_of(conv)):except("user:" .. sock.userId)
						:emit("user:online", { userId = sock.userId })
				end
			end
			local reply = { conversationId = conv, success = true }
			sock:emit("conversation:joined", reply)
			return reply
		end,

		["conversation:leave"] = function(sock, data)
			local room = room_of(data.conversationId)
			sock:leave(room)
			if not user_in_room(sock.userId, room) then
				forget_joined(sock.userId, data.conversationId)
			end
			local reply = { conversationId = data.conversationId, success = true }
			sock:emit("conversation:left", reply)
			return reply
		end,

		["typing:start"] = function(sock, data)
			local conv = data.conversationId
			if not allowed(conv, sock.userId) then
				return nil, 403, "not a member of this conversation"
			end
			if not sock:in_room(room_of(conv)) then
				return nil, 403, "join the conversation before typing in it"
			end
			typing[conv .. "\0" .. sock.userId] = {
				expires = parley.now() + TYPING_TTL_MS, conv = conv, user = sock.userId,
				sid = sock.id,
			}
			sock:to(room_of(conv)):emit("typing:start", {
				conversationId = conv, userId = sock.userId, isTyping = true,
				user = { id = sock.user.id, name = sock.user.name, avatar = sock.user.avatar },
			})
			return { success = true }
		end,

		["typing:stop"] = function(sock, data)
			local conv = data.conversationId
			if not allowed(conv, sock.userId) then
				return nil, 403, "not a member of this conversation"
			end
			local key = conv .. "\0" .. sock.userId
			if sock:in_room(room_of(conv)) then
				typing[key] = nil
				sock:to(room_of(conv)):emit("typing:stop", {
					conversationId = conv, userId = sock.userId, isTyping = false,
				})
			elseif typing[key] then
				-- Typed from inside the room, stopped from outside it: the
				-- room still hears the end of it.
				end_typing(key)
			end
			return { success = true }
		end,
	},
}
