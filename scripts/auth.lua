-- auth.lua - who a connecting socket is. Development mode: the `userId`
-- from the handshake query or the Socket.IO auth payload. (JWT mode, when
-- JWT_SECRET is set, arrives with the Lua platform work.)

local function identity(hs)
	local id = hs.auth.userId or hs.query.userId
	if type(id) ~= "string" or id == "" or #id > 128 then
		return nil
	end
	return {
		userId = id,
		name = hs.auth.name or hs.query.name or id,
		avatar = hs.auth.avatar or hs.query.avatar,
		phoneNumber = hs.auth.phoneNumber or hs.query.phoneNumber,
	}
end

return {
	priority = 100,
	namespaces = { "/", "/messages" },

	connect = function(sock, hs)
		local who = identity(hs)
		if not who then
			return false, 401, "unauthorized: a userId is required"
		end
		return who
	end,
}
