-- recoveryprobe - what the scripts see of connection state recovery, for
-- tests/integration/recovery.test.js: each connected hook tells its socket
-- whether it was recovered, and test:rooms acks the socket's rooms.
return {
	connected = function(sock)
		sock:emit("probe:connected", { id = sock.id, recovered = sock.recovered })
	end,

	events = {
		["test:rooms"] = function(sock)
			return sock:rooms()
		end,
	},
}
