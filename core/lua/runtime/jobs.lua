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

-- A worker runs a job, offers itself for the next, and runs that one: the
-- tail call keeps its stack flat however many jobs it runs.
local function worker_body(job, ...)
	job(...)
	idle_workers[#idle_workers + 1] = coroutine.running()
	return worker_body(coroutine.yield())
end

-- Runs a resumed or started job until it ends or waits again. (A job
-- catches its own failures and answers its client: this is the last resort.)
local function step(co, ok, tag, ticket, kind)
	if not ok then
		log("error", "runtime: a job failed: " .. describe(tag))
	elseif tag == WAIT then
		waiting[ticket] = co
	end
end

local function run_job(job, ...)
	local co = idle_workers[#idle_workers]
	if co then
		idle_workers[#idle_workers] = nil
	else
		co = coroutine.create(worker_body)
	end
	local saved = C.current_module
	step(co, coroutine.resume(co, job, ...))
	C.current_module = saved
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
C.wait_for = wait_for
C.settle = settle
