-- httpclient - parley.http.request from a handler, for
-- tests/integration/http.test.js: `http:request` takes the request's table
-- and acks {answer} or {err}; `http:timer` makes the same request from a
-- timer and emits `http:answered` to the socket.
--   PARLEY_PLUGIN_PATH=tests/plugins PARLEY_PLUGINS=testkit,httpclient

local function ask(d)
	local answer, err = parley.http.request(d)
	if not answer then
		return { err = err }
	end
	return { answer = answer }
end

return {
	events = {
		["http:request"] = function(sock, d)
			return ask(d)
		end,
		["http:timer"] = function(sock, d)
			local id = sock.id
			parley.timer(1, function()
				local s = parley.socket(id)
				local result = ask(d)
				if s then
					s:emit("http:answered", result)
				end
			end)
			return true
		end,
		-- A request with no url: a usage error, raised.
		["http:usage"] = function(sock, d)
			local ok, err = pcall(parley.http.request, { method = "GET" })
			return { ok = ok, err = tostring(err) }
		end,
	},
}
