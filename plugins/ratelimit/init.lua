-- ratelimit - a token bucket per user and event: each event has a rate (per
-- second) and a burst; over it the event is refused with a 429 error (its
-- ack gets it too). The buckets live in memory, one small table per user
-- and event in use, and survive reloads. A socket that keeps hitting the
-- limit stops being read for a moment (sock:throttle), so a flood costs
-- the server nothing while it waits in TCP.
--
-- On several nodes (cluster mode, docs/cluster.md) a limit is per user
-- across the cluster: an event that passes this node's bucket is also
-- counted in the shared store, at most `burst` per user and event in each
-- window of burst / rate seconds (aligned on the clock), one kv.incr each.
-- The local bucket refuses a one-node flood before any store round trip,
-- so the store sees at most `rate` events per second per user and node.

local SWEEP_MS = 60000

-- "userId\0event" -> { tokens, at }; userId -> refusals in a row
local buckets = parley.shared("buckets")
local refused = parley.shared("refused")
local CLUSTER = parley.settings.node_id ~= nil

local function limit_for(event)
	local l = config.events[event] or config.default
	if not l then
		return nil
	end
	return l.rate, l.burst or math.max(l.rate, 1)
end

-- Cluster mode: whether the user's events of this kind, over every node,
-- are still within `burst` in this window (counting this one). A store
-- that fails answers yes: a limit is not worth refusing service for.
local function cluster_allows(user, event, rate, burst)
	local window = burst / rate * 1000
	local n = math.floor(parley.now() / window)
	local count = parley.kv.incr("w:" .. user .. "\0" .. event .. ":" .. n, 1, 2 * window)
	return not count or count <= burst
end

local function refuse(sock, event, rate)
	local n = (refused[sock.id] or 0) + 1
	refused[sock.id] = n
	if config.throttle_ms > 0 and n % config.throttle_after == 0 then
		sock:throttle(config.throttle_ms)
	end
	return nil, 429, "rate limited: at most " .. rate .. " " .. event .. " per second"
end

-- Forgets buckets that have filled up again: they are as good as new.
local function sweep()
	local now = parley.now()
	for key, b in pairs(buckets) do
		local rate, burst = limit_for(key:match("%z(.*)$"))
		if not rate or b.tokens + (now - b.at) * rate / 1000 >= burst then
			buckets[key] = nil
		end
	end
end

return {
	priority = 90, -- after authentication, before validation and handlers

	load = function()
		parley.timer(SWEEP_MS, sweep, true)
	end,

	filter = function(sock, event, data)
		local rate, burst = limit_for(event)
		if not rate then
			return nil
		end
		local now = parley.now()
		local key = sock.userId .. "\0" .. event
		local b = buckets[key]
		if not b then
			b = { tokens = burst, at = now }
			buckets[key] = b
		else
			b.tokens = math.min(burst, b.tokens + (now - b.at) * rate / 1000)
			b.at = now
		end
		if b.tokens < 1 then
			return refuse(sock, event, rate)
		end
		b.tokens = b.tokens - 1
		if CLUSTER and not cluster_allows(sock.userId, event, rate, burst) then
			return refuse(sock, event, rate)
		end
		refused[sock.id] = nil
		return nil
	end,

	disconnect = function(sock)
		refused[sock.id] = nil
	end,
}
