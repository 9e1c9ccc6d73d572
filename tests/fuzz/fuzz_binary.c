/* fuzz_binary.c - Socket.IO binary packets, from the frames a client sends
 * to the arguments a script gets: a BINARY_EVENT or BINARY_ACK header
 * reassembled with its attachments (sio_binary_*, as core/proto/engine.c does),
 * then its placeholders resolved by the runtime's own core/lua/binary.lua.
 *
 * The input is a connection's messages separated by 0x1e: one starting with
 * 'b' is a binary message (an attachment: the bytes after the 'b'), any
 * other a text Socket.IO packet. What the server refuses (a stray
 * attachment, a text packet while attachments are due, a packet that does
 * not parse) ends the input, as it closes the connection.
 *
 * Asserts: a packet completes exactly when the count its header announced
 * has arrived, each attachment kept byte for byte, none accepted past the
 * count; what a packet holds (payload and attachments) is counted exactly
 * and never passes HOLD_MAX: the attachment that would is refused before
 * it is copied, and the connection ends (PARLEY_MAX_BINARY_PENDING); and,
 * as socket.io-parser's reconstructPacket decides, every object
 * with `_placeholder: true` in a packet with attachments is a placeholder:
 * its `num` an integer in [0, count) - then it becomes that attachment,
 * wherever it is nested - or the arguments are refused with a 400. The
 * resolved arguments, each of them, encode back (core/lua/binary.lua's
 * encode_args, as for an ack or a broadcast) to JSON and attachments that
 * resolve to the same values, and to plain JSON with each binary as base64. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua/cryptolua.h"
#include "wire/json.h"
#include "lua/jsonlua.h"
#include "wire/sio.h"

#ifndef PARLEY_SOURCE_DIR
#define PARLEY_SOURCE_DIR "."
#endif

/* As core/proto/engine.c: MAX_ATTACHMENTS and JSON_MAX_DEPTH. */
#define MAX_ATTACHMENTS 64
#define JSON_MAX_DEPTH 32
/* The driver's PARLEY_MAX_BINARY_PENDING: below the 4096 bytes an input may
 * have, above what the regression corpus's packets hold. */
#define HOLD_MAX 3072

/* The arguments the runtime would get (`args_json`, the attachments `att`
 * or nil), through binary.lua's decode_args, against a resolution of our
 * own. */
static const char check_lua[] =
	"local B, json, crypto, args_json, att = ...\n"
	"local function is_placeholder(v)\n"
	"  return type(v) == 'table' and not B.is_binary(v) and v._placeholder == true\n"
	"end\n"
	"local function valid(v)\n"
	"  local n = v.num\n"
	"  return type(n) == 'number' and n >= 0 and n % 1 == 0 and n < #att\n"
	"end\n"
	"local function any_invalid(v)\n"
	"  if type(v) ~= 'table' then return false end\n"
	"  if is_placeholder(v) then return not valid(v) end\n"
	"  for _, x in pairs(v) do if any_invalid(x) then return true end end\n"
	"  return false\n"
	"end\n"
	/* What `v` should become: placeholders replaced, nothing else touched. */
	"local function resolved(v)\n"
	"  if type(v) ~= 'table' then return v end\n"
	"  if is_placeholder(v) then return B.binary(att[v.num + 1]) end\n"
	"  local out = json.is_array(v) and json.array() or {}\n"
	"  for k, x in pairs(v) do out[k] = resolved(x) end\n"
	"  return out\n"
	"end\n"
	/* Binaries as the base64 plain clients get. */
	"local function plain(v)\n"
	"  if type(v) ~= 'table' then return v end\n"
	"  if B.is_binary(v) then return crypto.base64(v.data) end\n"
	"  local out = json.is_array(v) and json.array() or {}\n"
	"  for k, x in pairs(v) do out[k] = plain(x) end\n"
	"  return out\n"
	"end\n"
	"local function eq(a, b)\n"
	"  if type(a) ~= type(b) then return false end\n"
	"  if type(a) == 'userdata' then return tostring(a) == tostring(b) end\n"
	"  if type(a) ~= 'table' then return a == b end\n"
	"  if B.is_binary(a) or B.is_binary(b) then\n"
	"    return B.is_binary(a) and B.is_binary(b) and a.data == b.data\n"
	"  end\n"
	"  if json.is_array(a) ~= json.is_array(b) then return false end\n"
	"  for k, v in pairs(a) do if not eq(v, b[k]) then return false end end\n"
	"  for k in pairs(b) do if a[k] == nil then return false end end\n"
	"  return true\n"
	"end\n"
	"local sent = json.decode(args_json)\n"
	"if sent == nil then error('the core passed arguments that are not JSON: ' .. args_json) end\n"
	"local args, err = B.decode_args(args_json, att)\n"
	"local want = sent\n"
	"if att then\n"
	"  if any_invalid(sent) then\n"
	"    if args ~= nil or type(err) ~= 'table' or err.status ~= 400\n"
	"       or type(err.message) ~= 'string' then\n"
	"      error('a bad placeholder was not refused with a 400: ' .. args_json)\n"
	"    end\n"
	"    return\n"
	"  end\n"
	"  want = resolved(sent)\n"
	"end\n"
	"if args == nil then\n"
	"  error('arguments refused: ' .. tostring(err and err.message) .. ': ' .. args_json)\n"
	"end\n"
	"if not eq(args, want) then error('placeholders resolved wrongly: ' .. args_json) end\n"
	/* Out again, each argument, as an ack's values or an emit's go: through
	 * encode_args, then joined as the core does (jsonlua_args). */
	"local function pack(...) return select('#', ...), { ... } end\n"
	"local n, out = pack(B.encode_args(unpack(args, 1, #args)))\n"
	"local att_out, plain_text = out[1], out[2]\n"
	"while n > 2 and out[n] == nil do n = n - 1 end\n"
	"local parts = {}\n"
	"for i = 3, n do\n"
	"  parts[#parts + 1] = json.encode(out[i] == nil and json.null or out[i])\n"
	"end\n"
	"local text = '[' .. table.concat(parts, ',') .. ']'\n"
	"local back\n"
	"if att_out then\n"
	"  back = B.decode_args(text, att_out)\n"
	"  local p = json.decode(plain_text)\n"
	"  if not eq(p, plain(args)) then error('plain encoding differs: ' .. plain_text) end\n"
	"else\n"
	"  if plain_text ~= nil then error('a plain encoding without attachments') end\n"
	"  back = json.decode(text)\n"
	"end\n"
"if not eq(back, args) then error('encoding does not read back: ' .. tostring(text)) end\n";

static lua_State *L;
static int binary_ref, json_ref, crypto_ref, check_ref;

static void setup(void)
{
	L = luaL_newstate();
	luaL_openlibs(L);
	jsonlua_open(L);
	json_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	cryptolua_register(L);
	crypto_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	/* binary.lua as script.c loads it: with the JSON module and base64. */
	if (luaL_loadfile(L, PARLEY_SOURCE_DIR "/core/lua/binary.lua") != 0)
		goto fail;
	lua_rawgeti(L, LUA_REGISTRYINDEX, json_ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, crypto_ref);
	lua_getfield(L, -1, "base64");
	lua_remove(L, -2);
	if (lua_pcall(L, 2, 1, 0) != 0)
		goto fail;
	binary_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	if (luaL_loadbuffer(L, check_lua, sizeof(check_lua) - 1, "check") != 0)
		goto fail;
	check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return;
fail:
	fprintf(stderr, "%s\n", lua_tostring(L, -1));
	abort();
}

static void check_args(const char *args, size_t len, const struct sio_binary *b)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, binary_ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, json_ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, crypto_ref);
	lua_pushlstring(L, args, len);
	/* As script.c's push_attachments: nil when there are none. */
	if (b->count) {
		lua_createtable(L, (int)b->count, 0);
		for (unsigned i = 0; i < b->count; i++) {
			lua_pushlstring(L, (const char *)b->att[i].data, b->att[i].len);
			lua_rawseti(L, -2, (int)i + 1);
		}
	} else {
		lua_pushnil(L);
	}
	if (lua_pcall(L, 5, 0, 0) != 0) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		abort();
	}
}

/* A complete packet, dispatched as core/proto/engine.c's dispatch_event and
 * dispatch_ack do; what they refuse goes no further. */
static void finish(struct sio_binary *b)
{
	if (!sio_binary_complete(b) || sio_binary_add(b, "x", 1) != -EBADMSG)
		abort();
	if (b->type == SIO_BINARY_ACK) {
		if (b->id >= 0 && json_validate(b->json, b->json_len, JSON_MAX_DEPTH) == JSON_ARRAY)
			check_args(b->json, b->json_len, b);
		return;
	}
	struct json_span name, args;
	char namebuf[256];
	if (sio_event_split(b->json, b->json_len, JSON_MAX_DEPTH, &name, &args) < 0 ||
	    json_string_unescape(name, namebuf, sizeof(namebuf)) <= 0)
		return;
	if (!args.p) {
		check_args("[]", 2, b);
		return;
	}
	if (args.p < b->json || args.p + args.len != b->json + b->json_len || args.p[0] != ',')
		abort();
	char *argv = malloc(args.len);
	memcpy(argv, args.p, args.len);
	argv[0] = '[';
	check_args(argv, args.len, b);
	free(argv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *cur = (const char *)data, *end = cur + size;
	struct sio_binary b;
	int pending = 0;

	if (!L)
		setup();
	while (cur < end) {
		const char *sep = memchr(cur, 0x1e, (size_t)(end - cur));
		const char *rec = cur;
		size_t len = (size_t)((sep ? sep : end) - cur);
		cur = sep ? sep + 1 : end;

		if (len && rec[0] == 'b') {
			if (!pending)
				break; /* a stray attachment */
			unsigned before = b.count;
			size_t held = b.bytes;
			int r = sio_binary_add(&b, rec + 1, len - 1);
			if (r == -EMSGSIZE) {
				/* Refused only past the cap, and nothing kept. */
				if (held + len - 1 <= HOLD_MAX || b.count != before || b.bytes != held)
					abort();
				break; /* the connection is closed */
			}
			if (r < 0 || b.count != before + 1 || b.count > b.expected ||
			    b.bytes != held + len - 1 || b.bytes > HOLD_MAX ||
			    r != (b.count == b.expected) || b.att[before].len != len - 1 ||
			    memcmp(b.att[before].data, rec + 1, len - 1) != 0)
				abort();
			if (r == 1) {
				finish(&b);
				sio_binary_fini(&b);
				pending = 0;
			}
			continue;
		}
		if (pending)
			break; /* a text packet while attachments are due */
		struct sio_packet pkt;
		if (sio_parse(rec, len, MAX_ATTACHMENTS, &pkt) < 0)
			break;
		int binary = pkt.type == SIO_BINARY_EVENT || pkt.type == SIO_BINARY_ACK;
		int r = sio_binary_init(&b, &pkt, HOLD_MAX);
		if (r == -EMSGSIZE) {
			if (!binary || pkt.len <= HOLD_MAX)
				abort();
			break;
		}
		if (r < 0) {
			if (binary)
				abort();
			continue; /* other packets pass by */
		}
		if (!binary || b.expected != pkt.attachments || b.count != 0 || b.bytes != pkt.len ||
		    b.json_len != pkt.len || memcmp(b.json, pkt.data, pkt.len) != 0)
			abort();
		pending = 1;
		if (sio_binary_complete(&b)) {
			finish(&b);
			sio_binary_fini(&b);
			pending = 0;
		}
	}
	/* The connection closes with attachments still due. */
	if (pending)
		sio_binary_fini(&b);
	lua_gc(L, LUA_GCSTEP, 0);
	return 0;
}
