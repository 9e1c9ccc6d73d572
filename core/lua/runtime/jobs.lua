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
-- Connect, disconnect and join hooks answer at once and cannot wait.

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
local function step(co, ok, tag, ticket)
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
-- and an error, for parley.http).
local function resumed(saved, ...)
	C.current_module = saved
	return ...
end

local function wait_for(ticket, what)
	if not coroutine.running() then
		error(what .. " can only wait in an event handler, a route, a timer or an ack callback", 3)
	end
	return resumed(C.current_module, coroutine.yield(WAIT, ticket))
end

-- For the parts after this one.
C.waiting = waiting
C.step = step
C.run_job = run_job
C.wait_for = wait_for
