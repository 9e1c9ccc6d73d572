-- runtime/jobs.lua - jobs: event handlers, routes, timers and callbacks
-- in coroutines that may wait.
-- A part of the runtime (the Lua half of parley's seam, embedded in the
-- binary; core/lua/script.c runs the parts in order): each gets the C host
-- API `core` and the context `C` the parts share, and adds to it what later
-- parts use.
local core, C = ...
local log, describe = C.log, C.describe

-- ---- jobs: work that may wait ----
-- Event handlers, routes, timers and ack callbacks run as jobs, each in a
-- coroutine (reused from a pool), so that a script can wait for what the
-- core does in the background (parley.kv.wait, the store's writes) without
-- blocking anyone: the job yields, and the core resumes it with the result.
-- Connect hooks answer at once and cannot wait (docs/lua.md).

local WAIT = {}        -- what a waiting job yields, with its ticket
local waiting = {}     -- ticket -> the job's coroutine
local idle_workers = {}

-- ---- a socket's events in order ----
-- A socket's events run in order up to their first write: while a job of
-- the socket is running or waits on a "read" (the store's answer, on a
-- store that answers later), it holds the socket, and the socket's later
-- events queue behind it (FIFO); they start when that job ends or waits on
-- anything else (a write, an HTTP request). So two sends of one socket get
-- their sequence numbers in the order they were sent, on every backend.
-- The connected hooks hold their socket through every wait: its events
-- wait for them. On LMDB no read waits: events queue only behind
-- connected hooks that wait. docs/lua.md, "Jobs and waiting".
local holding = {}     -- job's coroutine -> the socket it holds
local through = {}     -- job's coroutine -> true: holds through any wait
local held = {}        -- socket -> the coroutine holding it
local queued = {}      -- socket -> { first = i, last = j, [i..j] = packed job }
local draining = {}    -- socket -> true while its queue is being started
local MAX_QUEUED = core.settings.max_queued_events

-- A worker runs a job, offers itself for the next, and runs that one: the
-- tail call keeps its stack flat however many jobs it runs.
local function worker_body(job, ...)
	job(...)
	idle_workers[#idle_workers + 1] = coroutine.running()
	return worker_body(coroutine.yield())
end

local drain

-- The job `co` no longer holds its socket: the socket's next events start.
local function release(co)
	local sock = holding[co]
	if not sock then
		return
	end
	holding[co], through[co] = nil, nil
	held[sock] = nil
	if queued[sock] then
		drain(sock)
	end
end

-- Runs a resumed or started job until it ends or waits again. (A job
-- catches its own failures and answers its client: this is the last resort.)
local function step(co, ok, tag, ticket, kind)
	if not ok then
		log("error", "runtime: a job failed: " .. describe(tag))
	elseif tag == WAIT then
		waiting[ticket] = co
		if kind == "read" or through[co] then
			return
		end
	end
	release(co)
end

local function start(sock, holds_through, job, ...)
	local co = idle_workers[#idle_workers]
	if co then
		idle_workers[#idle_workers] = nil
	else
		co = coroutine.create(worker_body)
	end
	if sock then
		holding[co], through[co] = sock, holds_through or nil
		held[sock] = co
	end
	local saved = C.current_module
	step(co, coroutine.resume(co, job, ...))
	C.current_module = saved
end

local function run_job(job, ...)
	start(nil, nil, job, ...)
end

local function start_packed(sock, p)
	start(sock, p.through, unpack(p, 1, p.n))
end

-- Starts the socket's queued jobs, in order, until one holds it.
function drain(sock)
	if draining[sock] then
		return
	end
	draining[sock] = true
	local q = queued[sock]
	while q and not held[sock] do
		local p = q[q.first]
		q[q.first] = nil
		q.first = q.first + 1
		if q.first > q.last then
			queued[sock] = nil
			q = nil
		end
		start_packed(sock, p)
	end
	draining[sock] = nil
end

-- A job of the socket: runs now, or queues behind the job that holds the
-- socket. `holds_through`: the job holds its socket through every wait
-- (the connected hooks). Returns false when the socket's queue is full
-- (MAX_QUEUED): the job was not queued.
local function run_socket_job(sock, holds_through, job, ...)
	if not held[sock] then
		start(sock, holds_through, job, ...)
		return true
	end
	local q = queued[sock]
	if not q then
		q = { first = 1, last = 0 }
		queued[sock] = q
	elseif q.last - q.first + 1 >= MAX_QUEUED then
		return false
	end
	q.last = q.last + 1
	q[q.last] = { n = select("#", ...) + 1, through = holds_through, job, ... }
	return true
end

-- The socket is gone: its queued jobs never start. Returns how many.
local function drop_queued(sock)
	local q = queued[sock]
	queued[sock] = nil
	return q and q.last - q.first + 1 or 0
end

-- Inside a job: waits for the core to resume `ticket`; returns what it
-- passed (nil, or an error message, for the store; an HTTP answer, or nil
-- and an error, for parley.http). `kind` says what the job waits on:
-- "read" (the store's answer to a read), "write" (a write being made
-- durable), or nil (anything else: an HTTP request).
local function resumed(saved, ...)
	C.current_module = saved
	return ...
end

-- A job waits; anything else cannot. `level`: error()'s, pointing at the
-- script's line that asked.
local function wait(ticket, what, kind, level)
	if not coroutine.running() then
		error(what .. " can only wait in an event handler, a connected or disconnect hook, a "
			.. "route, a timer or an ack callback", level + 1)
	end
	return resumed(C.current_module, coroutine.yield(WAIT, ticket, kind))
end

local function pass(...)
	return ...
end

-- Called by the function the script called (not as its tail call).
local function wait_for(ticket, what, kind)
	return pass(wait(ticket, what, kind, 3))
end

-- A host function's answer, now or later: core.PENDING and a ticket (the
-- store is elsewhere: the core resumes the ticket, script_resume_with, with
-- the values the function would have returned at once) makes the job wait
-- for those values; any other values are the answer, returned as they are.
-- Resumed with PENDING and a message: the function failed as a host
-- function raises, here in the job (the store refused a call it cannot
-- answer). `kind`: "read" or "write", as wait_for's. Called by the function
-- the script called, not as its tail call (the error's level).
local PENDING = core.PENDING
local function raise_failed(first, err, ...)
	if first == PENDING then
		error(err, 0)
	end
	return first, err, ...
end

local function settle(what, kind, first, ...)
	if first ~= PENDING then
		return first, ...
	end
	return raise_failed(wait((...), what, kind, 3))
end

-- For the parts after this one.
C.waiting = waiting
C.step = step
C.run_job = run_job
C.run_socket_job = run_socket_job
C.drop_queued = drop_queued
C.wait_for = wait_for
C.settle = settle
