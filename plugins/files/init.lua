-- files - progress of a file being sent, for the conversation to see:
--   file:progress {conversationId, transferId, bytes, total}
-- relayed as file:progress {conversationId, transferId, bytes, total, userId}
-- to the conversation but the sender, at most once per interval_ms per
-- transfer; the first and the last (bytes == total) always go. The ack says
-- whether this one was relayed.

local SWEEP_MS = 60000
local IDLE_MS = 10 * 60 * 1000

-- "userId\0transferId" -> { at = last relay, seen = last update }
local transfers = parley.shared("transfers")

local function count(v)
	return type(v) == "number" and v >= 0 and v == math.floor(v) and v <= 2 ^ 53
end

return {
	load = function()
		parley.timer(SWEEP_MS, function()
			local now = parley.now()
			for key, t in pairs(transfers) do
				if now - t.seen > IDLE_MS then
					transfers[key] = nil
				end
			end
		end, true)
	end,

	events = {
		["file:progress"] = function(sock, d)
			if type(d) ~= "table" then
				return nil, 400, "payload must be an object"
			end
			for _, f in ipairs({ "conversationId", "transferId" }) do
				if type(d[f]) ~= "string" or d[f] == "" or #d[f] > 128 then
					return nil, 400, f .. " is required and must be a non-empty string"
				end
			end
			if not count(d.bytes) or not count(d.total) or d.bytes > d.total then
				return nil, 400, "bytes and total must be whole numbers with bytes <= total"
			end
			local member, registered = parley.store.is_member(d.conversationId, sock.userId)
			if registered and not member then
				return nil, 403, "not a member of this conversation"
			end
			local key = sock.userId .. "\0" .. d.transferId
			local now = parley.now()
			local t = transfers[key]
			local last = d.bytes == d.total
			if t and not last and now - t.at < config.interval_ms then
				t.seen = now
				return { relayed = false }
			end
			if last then
				transfers[key] = nil
			else
				transfers[key] = { at = now, seen = now }
			end
			sock:to("conversation:" .. d.conversationId):emit("file:progress", {
				conversationId = d.conversationId, transferId = d.transferId,
				bytes = d.bytes, total = d.total, userId = sock.userId,
			})
			return { relayed = true }
		end,
	},
}
