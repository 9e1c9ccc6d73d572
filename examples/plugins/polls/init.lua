-- polls - a poll in a conversation, written as a parley plugin.
--
--   poll:create {conversationId, question, options = {...}}
--       -> ack {pollId}; the conversation gets poll:created
--   poll:vote {pollId, option}   (one vote per user; a new one replaces it)
--       -> ack {counts}; the conversation gets poll:updated {pollId, counts}
--   poll:get {pollId} -> the poll with its counts
--
-- Polls live in the plugin's key-value space, so they survive restarts.
-- Only sockets in the conversation (conversation:join, which a conversation
-- with registered members allows its members only) may create, vote or read.

local function room_of(conversation_id)
	return "conversation:" .. conversation_id
end

local function in_room(sock, room)
	for _, r in ipairs(sock:rooms()) do
		if r == room then
			return true
		end
	end
	return false
end

local function counts_of(poll)
	local counts = {}
	for i = 1, #poll.options do
		counts[i] = 0
	end
	for _, choice in pairs(poll.votes) do
		counts[choice] = counts[choice] + 1
	end
	return parley.json.array(counts)
end

return {
	events = {
		["poll:create"] = function(sock, data)
			if type(data) ~= "table" or type(data.conversationId) ~= "string" then
				return nil, 400, "conversationId is required"
			end
			if type(data.question) ~= "string" or data.question == "" or #data.question > 300 then
				return nil, 400, "question must be 1 to 300 characters"
			end
			local options = data.options
			if type(options) ~= "table" or #options < 2 or #options > config.max_options then
				return nil, 400, "options must list 2 to " .. config.max_options .. " choices"
			end
			for _, o in ipairs(options) do
				if type(o) ~= "string" or o == "" or #o > 100 then
					return nil, 400, "each option must be 1 to 100 characters"
				end
			end
			local room = room_of(data.conversationId)
			if not in_room(sock, room) then
				return nil, 403, "join the conversation first"
			end
			local id = parley.crypto.base64url_encode(parley.crypto.random(9))
			local poll = { pollId = id, conversationId = data.conversationId,
				question = data.question, options = options, createdBy = sock.userId,
				votes = {} }
			parley.kv.set("poll:" .. id, poll)
			parley.to(room):emit("poll:created", { pollId = id,
				conversationId = poll.conversationId, question = poll.question,
				options = options, createdBy = poll.createdBy })
			return { pollId = id }
		end,

		["poll:vote"] = function(sock, data)
			if type(data) ~= "table" or type(data.pollId) ~= "string" then
				return nil, 400, "pollId is required"
			end
			local poll = parley.kv.get("poll:" .. data.pollId)
			if not poll then
				return nil, 404, "no such poll"
			end
			local room = room_of(poll.conversationId)
			if not in_room(sock, room) then
				return nil, 403, "join the conversation first"
			end
			if type(data.option) ~= "number" or not poll.options[data.option] then
				return nil, 400, "option must be the number of a choice (1 to " .. #poll.options .. ")"
			end
			poll.votes[sock.userId] = data.option
			parley.kv.set("poll:" .. data.pollId, poll)
			local counts = counts_of(poll)
			parley.to(room):emit("poll:updated", { pollId = data.pollId, counts = counts })
			return { counts = counts }
		end,

		["poll:get"] = function(sock, data)
			local poll = type(data) == "table" and type(data.pollId) == "string"
				and parley.kv.get("poll:" .. data.pollId)
			-- A poll is its conversation's: to a socket outside it, one that
			-- exists answers like one that does not.
			if not poll or not in_room(sock, room_of(poll.conversationId)) then
				return nil, 404, "no such poll"
			end
			return { pollId = poll.pollId, conversationId = poll.conversationId,
				question = poll.question, options = poll.options, counts = counts_of(poll) }
		end,
	},
}
