-- auth.lua - who a connecting socket is.
--
-- Development mode (JWT_SECRET unset): the `userId` from the Socket.IO auth
-- payload or the handshake query, with an optional name, avatar and
-- phoneNumber beside it.
--
-- JWT mode (JWT_SECRET set): a token signed with HS256 and that secret, from
-- the Socket.IO auth payload (`auth.token`), the `token` query parameter, or
-- an `Authorization: Bearer` header. The algorithm is pinned (the header's
-- `alg` must say HS256; `none` and every other algorithm are refused), `exp`
-- and `nbf` are enforced, and the identity comes from the token only: its
-- `sub` (or `userId`) claim, with the `name`, `phoneNumber` and `avatar`
-- claims as the profile. A bare userId is refused.

local crypto = parley.crypto
local json = parley.json

local MAX_ID = 128
local MAX_TOKEN = 8192

local function valid_id(id)
	return type(id) == "string" and id ~= "" and #id <= MAX_ID and not id:find("\0", 1, true)
end

-- Profile fields are kept only when they are short strings.
local function field(v)
	if type(v) == "string" and #v <= 1024 then
		return v
	end
	return nil
end

local function dev_identity(hs)
	local id = hs.auth.userId or hs.query.userId
	if not valid_id(id) then
		return nil
	end
	return {
		userId = id,
		name = field(hs.auth.name or hs.query.name) or id,
		avatar = field(hs.auth.avatar or hs.query.avatar),
		phoneNumber = field(hs.auth.phoneNumber or hs.query.phoneNumber),
	}
end

-- The token a client presented, from wherever it may come.
local function presented_token(hs)
	if type(hs.auth.token) == "string" then
		return hs.auth.token
	end
	if type(hs.query.token) == "string" then
		return hs.query.token
	end
	local h = hs.headers.authorization
	if type(h) == "string" then
		return h:match("^[Bb]earer%s+(%S+)%s*$")
	end
	return nil
end

local function decode_segment(s)
	local raw = crypto.base64url_decode(s)
	if not raw then
		return nil
	end
	local v = json.decode(raw)
	if type(v) ~= "table" then
		return nil
	end
	return v
end

-- Verifies an HS256 JWT; returns its claims or nil, why.
local function verify(token, secret, now_s)
	if #token > MAX_TOKEN then
		return nil, "token too long"
	end
	local h64, p64, s64 = token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
	if not h64 then
		return nil, "malformed token"
	end
	local header = decode_segment(h64)
	if not header then
		return nil, "malformed token header"
	end
	-- Pinned: the token does not choose how it is checked.
	if header.alg ~= "HS256" then
		return nil, "unsupported token algorithm"
	end
	local sig = crypto.base64url_decode(s64)
	if not sig or not crypto.equals(sig, crypto.hmac_sha256(secret, h64 .. "." .. p64)) then
		return nil, "invalid token signature"
	end
	local claims = decode_segment(p64)
	if not claims then
		return nil, "malformed token claims"
	end
	if claims.exp ~= nil and (type(claims.exp) ~= "number" or now_s >= claims.exp) then
		return nil, "token expired"
	end
	if claims.nbf ~= nil and (type(claims.nbf) ~= "number" or now_s < claims.nbf) then
		return nil, "token not yet valid"
	end
	return claims
end

local function jwt_identity(hs, secret)
	local token = presented_token(hs)
	if not token then
		return nil, "a token is required"
	end
	local claims, why = verify(token, secret, math.floor(parley.now() / 1000))
	if not claims then
		return nil, why
	end
	local id = claims.sub
	if id == nil then
		id = claims.userId
	end
	if not valid_id(id) then
		return nil, "the token names no user (sub)"
	end
	return {
		userId = id,
		name = field(claims.name) or id,
		avatar = field(claims.avatar),
		phoneNumber = field(claims.phoneNumber),
	}
end

return {
	priority = 100,
	namespaces = { "/", "/messages" },

	-- Said at every load, at warn: a server left in development mode by
	-- mistake trusts whatever userId a client sends.
	load = function()
		if not parley.settings.jwt_secret then
			parley.log.warn("development auth is on: any client can claim any userId "
				.. "(set JWT_SECRET for signed tokens)")
		end
	end,

	connect = function(sock, hs)
		local secret = parley.settings.jwt_secret
		if secret then
			local who, why = jwt_identity(hs, secret)
			if not who then
				return false, 401, "unauthorized: " .. why
			end
			return who
		end
		local who = dev_identity(hs)
		if not who then
			return false, 401, "unauthorized: a userId is required"
		end
		return who
	end,
}
