-- push - tells a webhook of messages (and incoming calls) to users with no
-- socket connected, so that the backend behind it can wake their phones
-- (FCM, APNs). docs/push.md says how to receive it.
--
-- Each delivery is one POST of JSON to the webhook (PARLEY_PUSH_URL), with
-- X-Parley-Delivery (an id that stays the same across retries) and
-- X-Parley-Signature: sha256=<hex HMAC-SHA256 of the body with
-- PARLEY_PUSH_SECRET>. Deliveries wait in an outbox in the store (this
-- plugin's kv, durable before the sender's ack): a 2xx ends one, anything
-- else is retried with exponential backoff and jitter up to max_attempts
-- and max_age_ms, then dropped and counted. Several messages to one user
-- within collapse_ms go as one push (`count`); a user who connects before
-- it went out cancels it (and a try finds them connected anywhere: none);
-- past max_outbox the oldest is dropped.
--
-- Several nodes (docs/cluster.md): each delivery has an owner, the node
-- that enqueued it, and only the owner tries it. It is kept under the
-- owner's own keys ("o:<node>\0<id>", the node's start in the value), so
-- a node that starts reads only its own name's deliveries, and takes them
-- from its earlier start with kv.cas; when a node dies, every survivor
-- tries to take each of its deliveries with kv.cas on the delivery's text,
-- and exactly one wins it. One node: "o:<id>", no owner.

local json, crypto, kv = parley.json, parley.crypto, parley.kv

-- Below the calls plugin: its call:invite handler runs first, and a call
-- it refuses never reaches ours.
local priority = -100

local URL = config.url or parley.settings.push_url
local SECRET = config.secret or parley.settings.push_secret
-- Cluster mode: this node's name and start (nil on one node).
local NODE, START = parley.settings.node_id, parley.settings.node_start
local PREFIX = NODE and "o:" .. NODE .. "\0" or "o:"

-- The outbox, in memory as in the store ("o:<id>" -> delivery), kept across
-- reloads; read from the store once after a start.
-- delivery: { id, userId, kind, due, attempts, created, count, payload,
-- start (cluster mode: the owner's start) }; stored as its JSON text, so
-- that kv.cas can compare it.
local box = parley.shared("outbox")

local function gauge()
	parley.metrics.set("parley_push_outbox", box.n or 0)
end

local function hex(s)
	return (s:gsub(".", function(c)
		return string.format("%02x", c:byte())
	end))
end

-- Ids sort by creation (the oldest is the smallest), and are unique.
local function new_id()
	return string.format("%013d", parley.now()) .. hex(crypto.random(6))
end

local function save(d)
	d.start = START
	kv.set(PREFIX .. d.id, json.encode(d))
end

-- A stored delivery (its JSON text; a table from before it was text), or
-- nil.
local function decode(v)
	if type(v) == "string" then
		v = json.decode(v)
	end
	if type(v) == "table" and type(v.id) == "string" and type(v.userId) == "string" then
		return v
	end
	return nil
end

local function index(d)
	box.items[d.id] = d
	box.n = box.n + 1
	local mine = box.of_user[d.userId]
	if not mine then
		mine = {}
		box.of_user[d.userId] = mine
	end
	mine[d.id] = true
end

local function remove(d, reason)
	if box.items[d.id] ~= d then
		return
	end
	box.items[d.id] = nil
	box.n = box.n - 1
	local mine = box.of_user[d.userId]
	if mine then
		mine[d.id] = nil
		if next(mine) == nil then
			box.of_user[d.userId] = nil
		end
	end
	kv.delete(PREFIX .. d.id)
	if reason then
		parley.metrics.add('parley_push_dropped_total{reason="' .. reason .. '"}', 1)
		parley.log.warn("delivery %s to %s dropped: %s", d.id, d.userId, reason)
	end
	gauge()
end

local function load_outbox()
	if box.items then
		return
	end
	box.items, box.of_user, box.n, box.inflight = {}, {}, 0, {}
	for _, key in ipairs(kv.keys(PREFIX, config.max_outbox + 1) or {}) do
		local v = kv.get(key)
		local d = decode(v)
		if d and d.start ~= START then
			-- An earlier start of this node's name (a restart): ours if
			-- no survivor took it first (node_gone), and theirs if so.
			local was = d.start
			d.start = START
			if not kv.cas(key, v, json.encode(d)) then
				d = nil
			elseif was then
				parley.metrics.add("parley_push_taken_total", 1)
			end
		end
		if d then
			index(d)
		end
	end
	gauge()
end

-- Cluster mode: node `node` died (its start `start`): its deliveries are
-- taken, each by exactly one survivor (a kv.cas from the text read), and
-- tried here from now on. Our copy is written before the dead node's is
-- deleted: a crash between the two sends one twice (the same delivery id,
-- which receivers drop), never none.
local function take_over(node, start)
	load_outbox()
	for _, key in ipairs(kv.keys("o:" .. node .. "\0", config.max_outbox + 1) or {}) do
		local v = kv.get(key)
		local d = decode(v)
		if d and d.start == start and not box.items[d.id] then
			save(d)
			if kv.cas(key, v, nil) then
				index(d)
				parley.metrics.add("parley_push_taken_total", 1)
				parley.log.info("delivery %s to %s taken over from node %s", d.id, d.userId, node)
			else
				kv.delete(PREFIX .. d.id)
			end
		end
	end
	gauge()
end

local function online(user)
	for _, nsp in ipairs(parley.namespaces()) do
		if parley.user_sockets(user, nsp) > 0 then
			return true
		end
	end
	return false
end

-- The first `n` characters of UTF-8 text.
local function cut(text, n)
	local out, count = {}, 0
	for ch in text:gmatch("[^\128-\191][\128-\191]*") do
		if count == n then
			return table.concat(out) .. "…"
		end
		count = count + 1
		out[count] = ch
	end
	return text
end

local function enqueue(user, kind, payload)
	local now = parley.now()
	-- A message's push not yet tried takes in the next one (collapse).
	if kind == "message" then
		for id in pairs(box.of_user[user] or {}) do
			local d = box.items[id]
			if d.kind == "message" and d.attempts == 0 and not box.inflight[id] then
				d.count = d.count + 1
				d.payload = payload
				save(d)
				parley.metrics.add("parley_push_collapsed_total", 1)
				return
			end
		end
	end
	while box.n >= config.max_outbox do
		local oldest
		for id in pairs(box.items) do
			if not box.inflight[id] and (not oldest or id < oldest) then
				oldest = id
			end
		end
		if not oldest then
			break
		end
		remove(box.items[oldest], "overflow")
	end
	local d = { id = new_id(), userId = user, kind = kind, attempts = 0, created = now,
		count = 1, payload = payload,
		due = now + (kind == "message" and config.collapse_ms or 0) }
	index(d)
	save(d)
	gauge()
end

local function body_of(d)
	local b = {}
	for k, v in pairs(d.payload) do
		b[k] = v
	end
	b.kind, b.userId, b.count = d.kind, d.userId, d.count
	return json.encode(b)
end

-- Between half of the step and all of it: retries of many deliveries that
-- failed together do not come back together.
local function backoff(attempts)
	local step = math.min(config.max_backoff_ms, config.backoff_ms * 2 ^ (attempts - 1))
	local r = crypto.random(2)
	return step / 2 + step / 2 * ((r:byte(1) * 256 + r:byte(2)) / 65535)
end

-- One try of one delivery (a job of its own: it waits for the webhook).
local function deliver(d)
	-- Connected anywhere since (in a cluster, maybe on another node, whose
	-- connected hook does not see this node's outbox): no push.
	if online(d.userId) then
		box.inflight[d.id] = nil
		if box.items[d.id] == d then
			remove(d)
			parley.metrics.add("parley_push_cancelled_total", 1)
		end
		return
	end
	if box.items[d.id] ~= d then
		box.inflight[d.id] = nil
		return
	end
	local body = body_of(d)
	local started = parley.now()
	local res, err = parley.http.request({
		method = "POST", url = URL, body = body, timeout_ms = config.timeout_ms,
		headers = {
			["Content-Type"] = "application/json",
			["User-Agent"] = "parley-push",
			["X-Parley-Delivery"] = d.id,
			["X-Parley-Signature"] = "sha256=" .. hex(crypto.hmac_sha256(SECRET, body)),
		},
	})
	box.inflight[d.id] = nil
	parley.metrics.add("parley_push_webhook_requests_total", 1)
	parley.metrics.add("parley_push_webhook_seconds_total", (parley.now() - started) / 1000)
	if box.items[d.id] ~= d then
		return
	end
	if res and res.status >= 200 and res.status < 300 then
		parley.metrics.add("parley_push_sent_total", 1)
		remove(d)
		return
	end
	local why = res and ("status " .. res.status) or err
	d.attempts = d.attempts + 1
	local now = parley.now()
	if d.attempts >= config.max_attempts then
		return remove(d, "attempts")
	end
	if now - d.created >= config.max_age_ms then
		return remove(d, "age")
	end
	d.due = now + backoff(d.attempts)
	save(d)
	parley.metrics.add("parley_push_retried_total", 1)
	parley.log.info("delivery %s to %s: %s; try %d in %d ms", d.id, d.userId, why,
		d.attempts + 1, d.due - now)
end

local function tick()
	load_outbox()
	local now, busy = parley.now(), 0
	for _ in pairs(box.inflight) do
		busy = busy + 1
	end
	for id, d in pairs(box.items) do
		if busy >= config.concurrency then
			return
		end
		if d.due <= now and not box.inflight[id] then
			box.inflight[id] = true
			busy = busy + 1
			parley.timer(0, function()
				deliver(d)
			end)
		end
	end
end

local function preview_of(m)
	if m.type == "text" and type(m.content) == "string" then
		return cut(m.content, config.preview_chars)
	end
	return m.type
end

local function name_of(profile, id)
	return type(profile) == "table" and type(profile.name) == "string" and profile.name or id
end

local hooks = {
	priority = priority,

	load = function()
		if type(URL) ~= "string" or URL == "" then
			error("push: no webhook URL: set PARLEY_PUSH_URL or plugin_config.push.url", 0)
		end
		if not URL:match("^[Hh][Tt][Tt][Pp][Ss]?://[^/]") then
			error("push: the webhook URL (PARLEY_PUSH_URL) must be http:// or https://, not "
				.. URL, 0)
		end
		if type(SECRET) ~= "string" or SECRET == "" then
			error("push: no secret: set PARLEY_PUSH_SECRET or plugin_config.push.secret", 0)
		end
		parley.metrics.declare("parley_push_sent_total", "counter",
			"Pushes the webhook took (a 2xx).")
		parley.metrics.declare("parley_push_retried_total", "counter",
			"Pushes tried again after a failed try (not 2xx, timeout, refused).")
		parley.metrics.declare("parley_push_dropped_total", "counter",
			"Pushes given up: too many tries, too old, or the outbox full.",
			{ 'parley_push_dropped_total{reason="attempts"}',
				'parley_push_dropped_total{reason="age"}',
				'parley_push_dropped_total{reason="overflow"}' })
		parley.metrics.declare("parley_push_cancelled_total", "counter",
			"Pushes not sent: their user connected first (anywhere in a cluster).")
		parley.metrics.declare("parley_push_collapsed_total", "counter",
			"Messages told in a push that was already waiting for their user.")
		parley.metrics.declare("parley_push_outbox", "gauge", "Pushes waiting in the outbox.")
		parley.metrics.declare("parley_push_taken_total", "counter",
			"Cluster mode: pushes this node took over from a node that died (or from "
				.. "its own name's earlier start).")
		parley.metrics.declare("parley_push_webhook_requests_total", "counter",
			"POSTs to the webhook.")
		parley.metrics.declare("parley_push_webhook_seconds_total", "seconds",
			"Time the webhook's POSTs took, summed (over requests: the mean latency).")
		-- The outbox is read by the first tick (or the first hook that needs
		-- it): a timer may wait for the store, the load hook may not (on
		-- PostgreSQL every store read waits).
		parley.timer(config.tick_ms, tick, true)
	end,

	-- A message is durable: one delivery for each registered member but the
	-- sender with no socket, durable before the sender's ack.
	stored = function(m)
		load_outbox()
		local wrote = false
		local payload = { conversationId = m.conversationId, messageId = m.messageId,
			senderId = m.senderId, sender = name_of(m.sender, m.senderId), type = m.type,
			preview = preview_of(m), timestamp = m.timestamp }
		for _, u in ipairs(parley.store.members(m.conversationId) or {}) do
			if u ~= m.senderId and not online(u) then
				enqueue(u, "message", payload)
				wrote = true
			end
		end
		if wrote then
			kv.wait()
		end
	end,

	-- A user with a socket needs no push: what waits for them is cancelled
	-- (unless a try is on its way).
	connected = function(sock)
		load_outbox()
		for id in pairs(box.of_user[sock.userId] or {}) do
			if not box.inflight[id] then
				remove(box.items[id])
				parley.metrics.add("parley_push_cancelled_total", 1)
			end
		end
	end,

	-- Cluster mode: a node died; its deliveries need an owner.
	node_gone = function(node, start)
		take_over(node, start)
	end,

	events = {},
}

if config.calls then
	-- After the calls plugin's own handler accepted the invite.
	hooks.events["call:invite"] = function(sock, d)
		load_outbox()
		local users = {}
		if type(d.toUserId) == "string" then
			users = { d.toUserId }
		elseif type(d.conversationId) == "string" then
			users = parley.store.members(d.conversationId) or {}
		end
		local wrote = false
		for _, u in ipairs(users) do
			if u ~= sock.userId and not online(u) then
				enqueue(u, "call", { conversationId = d.conversationId, senderId = sock.userId,
					sender = name_of(sock.user, sock.userId), type = d.kind,
					preview = d.kind .. " call", timestamp = parley.store.iso_time(parley.now()) })
				wrote = true
			end
		end
		if wrote then
			kv.wait()
		end
	end
end

return hooks
