/* jsonlua.c - JSON for the Lua side (see jsonlua.h). Decoding validates with
 * json.h, then builds tables by walking the validated text; encoding writes
 * into a C buffer so that a Lua error never strands half an output, in
 * scratch memory (scratch.h) so that a Lua error (the memory budget refusing
 * the result's string) never strands the buffer either. */
#include "lua/jsonlua.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "base/alloc.h"
#include "wire/json.h"
#include "base/scratch.h"

#define JSONLUA_MAX_DEPTH 64

/* Registry keys: the addresses are unique, the values unused. */
static const char array_mt_key = 'a';
static const char number_mt_key = 'n';
static const char raw_mt_key = 'r';

static void push_registry(lua_State *L, const char *key)
{
	lua_pushlightuserdata(L, (void *)key);
	lua_rawget(L, LUA_REGISTRYINDEX);
}

void jsonlua_mark_array(lua_State *L)
{
	push_registry(L, &array_mt_key);
	lua_setmetatable(L, -2);
}

/* ---- decoding ---- */

/* Decoding reads text that json_validate has accepted, in one pass: a
 * cursor moves over each value once, so nothing is scanned again to find
 * where a member ends. */
struct reader {
	const char *p;
	const char *end;
};

static void skip_ws(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

/* Pushes the string token at the cursor (its opening quote) and moves past
 * it. Most strings have no escape and are pushed straight from the text;
 * unescaping never lengthens a string. */
static void read_string(lua_State *L, struct reader *r)
{
	const char *start = r->p + 1, *q = start;
	int escaped = 0;

	while (*q != '"') {
		if (*q == '\\') {
			escaped = 1;
			q++;
		}
		q++;
	}
	r->p = q + 1;
	if (!escaped) {
		lua_pushlstring(L, start, (size_t)(q - start));
		return;
	}
	struct json_span token = { start - 1, (size_t)(r->p - start + 1) };
	char small[256];
	char *buf = token.len > sizeof(small) ? lua_newuserdata(L, token.len) : small;
	long n = json_string_unescape(token, buf, token.len > sizeof(small) ? token.len : sizeof(small));
	lua_pushlstring(L, buf, n > 0 ? (size_t)n : 0);
	if (buf != small)
		lua_remove(L, -2);
}

/* Pushes a boxed number that keeps its text (an integer beyond 2^53). */
static void push_boxed_number(lua_State *L, const char *p, size_t len)
{
	char *box = lua_newuserdata(L, len + 1);

	memcpy(box, p, len);
	box[len] = '\0';
	push_registry(L, &number_mt_key);
	lua_setmetatable(L, -2);
}

static void push_number(lua_State *L, struct json_span v)
{
	char text[64];
	size_t digits = 0;
	int integer = 1;

	uint64_t u = 0;

	for (size_t i = 0; i < v.len; i++) {
		char c = v.p[i];
		if (c == '.' || c == 'e' || c == 'E') {
			integer = 0;
		} else if (c >= '0' && c <= '9') {
			digits++;
			u = u * 10 + (uint64_t)(c - '0');
		}
	}
	if (integer && digits <= 15) {
		/* Most numbers are ids, counts and timestamps: no strtod for them.
		 * Fifteen digits are below 2^53, so the double is exact; -0 keeps
		 * its sign. */
		double d = (double)u;
		lua_pushnumber(L, v.p[0] == '-' ? -d : d);
		return;
	}
	if (integer && digits > 15) {
		/* Past 15 digits a double may not hold the integer: keep its text
		 * unless it reads back exactly. */
		if (v.len >= sizeof(text) || digits > 17) {
			push_boxed_number(L, v.p, v.len);
			return;
		}
		char back[64];
		memcpy(text, v.p, v.len);
		text[v.len] = '\0';
		double d = strtod(text, NULL);
		/* JSON integers have no leading zeros or '+', so the token is
		 * canonical: the double is exact iff it prints the same. */
		snprintf(back, sizeof(back), "%.0f", d);
		if (strcmp(back, text) != 0) {
			push_boxed_number(L, v.p, v.len);
			return;
		}
		lua_pushnumber(L, d);
		return;
	}
	double d;
	if (v.len < sizeof(text)) {
		memcpy(text, v.p, v.len);
		text[v.len] = '\0';
		d = strtod(text, NULL);
	} else {
		/* A very long fraction: strtod needs a terminated copy. */
		char *big = xstrndup(v.p, v.len);
		d = strtod(big, NULL);
		free(big);
	}
	/* Beyond a double's range (1e400): keep the text, which encodes back
	 * as it came, where infinity has no JSON form at all. */
	if (isinf(d))
		push_boxed_number(L, v.p, v.len);
	else
		lua_pushnumber(L, d);
}

static void read_value(lua_State *L, struct reader *r)
{
	luaL_checkstack(L, 4, "JSON nested too deeply");
	skip_ws(r);
	switch (*r->p) {
	case '{':
		lua_createtable(L, 0, 4);
		r->p++;
		for (;;) {
			skip_ws(r);
			if (*r->p == '}')
				break;
			if (*r->p == ',') {
				r->p++;
				skip_ws(r);
			}
			read_string(L, r);
			skip_ws(r);
			r->p++; /* ':' */
			read_value(L, r);
			lua_rawset(L, -3);
		}
		r->p++;
		return;
	case '[': {
		int i = 0;
		lua_createtable(L, 4, 0);
		r->p++;
		for (;;) {
			skip_ws(r);
			if (*r->p == ']')
				break;
			if (*r->p == ',')
				r->p++;
			read_value(L, r);
			lua_rawseti(L, -2, ++i);
		}
		r->p++;
		jsonlua_mark_array(L);
		return;
	}
	case '"':
		read_string(L, r);
		return;
	case 't':
		r->p += 4;
		lua_pushboolean(L, 1);
		return;
	case 'f':
		r->p += 5;
		lua_pushboolean(L, 0);
		return;
	case 'n':
		r->p += 4;
		lua_pushlightuserdata(L, NULL);
		return;
	default: {
		const char *start = r->p;
		while (r->p < r->end && (*r->p == '-' || *r->p == '+' || *r->p == '.' ||
					 *r->p == 'e' || *r->p == 'E' ||
					 (*r->p >= '0' && *r->p <= '9')))
			r->p++;
		push_number(L, (struct json_span){ start, (size_t)(r->p - start) });
		return;
	}
	}
}

/* decode(text) -> value | nil, err */
static int l_decode(lua_State *L)
{
	size_t len;
	const char *p = luaL_checklstring(L, 1, &len);

	if (json_validate(p, len, JSONLUA_MAX_DEPTH) == JSON_INVALID) {
		lua_pushnil(L);
		lua_pushliteral(L, "invalid JSON");
		return 2;
	}
	struct reader r = { p, p + len };
	read_value(L, &r);
	return 1;
}

void jsonlua_push_validated(lua_State *L, const char *json, size_t len)
{
	struct reader r = { json, json + len };

	read_value(L, &r);
}

/* ---- encoding ---- */

struct out {
	char *p;
	size_t len, cap;
	const char *err; /* set on failure; the walk then unwinds */
};

#define OUT_FIRST 256 /* most payloads and results fit in the first block */

static void out_reserve(struct out *o, size_t n)
{
	if (o->len + n <= o->cap)
		return;
	o->cap = (o->len + n) * 2;
	if (o->cap < OUT_FIRST)
		o->cap = OUT_FIRST;
	o->p = scratch_realloc(o->p, o->cap);
}

static void out_put(struct out *o, const char *s, size_t n)
{
	out_reserve(o, n);
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

/* Whether s is printable ASCII with no '"' or '\\': what most keys and ids
 * are, written as they are between quotes. */
static int plain_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			return 0;
	}
	return 1;
}

static void out_string(struct out *o, const char *s, size_t len)
{
	if (plain_ascii(s, len)) {
		out_reserve(o, len + 2);
		o->p[o->len] = '"';
		memcpy(o->p + o->len + 1, s, len);
		o->p[o->len + 1 + len] = '"';
		o->len += len + 2;
		return;
	}
	if (!json_utf8_valid(s, len)) {
		o->err = "a string is not valid UTF-8 (send bytes as parley.binary)";
		return;
	}
	out_reserve(o, json_escaped_max(len));
	o->len += json_escape(s, len, o->p + o->len);
}

#define NUMBER_TEXT_MAX 40

/* `d` with the fewest digits that read back as the same double: its text in
 * buf (not terminated), and the length in *len; NULL for NaN and infinity,
 * which have no JSON form. */
static const char *number_text(double d, char buf[NUMBER_TEXT_MAX], size_t *len)
{
	if (isnan(d) || isinf(d))
		return NULL;
	if (d == floor(d) && fabs(d) < 1e16) {
		/* Integers (ids, counts, timestamps) are most numbers: digits by
		 * hand, since snprintf's float path is slow. -0 keeps its sign. */
		uint64_t u = (uint64_t)fabs(d);
		char *p = buf + NUMBER_TEXT_MAX;
		do
			*--p = (char)('0' + u % 10);
		while (u /= 10);
		if (signbit(d))
			*--p = '-';
		*len = (size_t)(buf + NUMBER_TEXT_MAX - p);
		return p;
	}
	/* %g drops trailing zeros, so 15 digits is already short for normal
	 * doubles; subnormals hold fewer digits than they print. */
	int n = 0;
	for (int prec = fabs(d) < 2.2250738585072014e-308 ? 1 : 15; prec <= 17; prec++) {
		n = snprintf(buf, NUMBER_TEXT_MAX, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	*len = (size_t)n;
	return buf;
}

static void out_number(struct out *o, double d)
{
	char buf[NUMBER_TEXT_MAX];
	size_t n;
	const char *text = number_text(d, buf, &n);

	if (!text)
		o->err = "NaN and infinity have no JSON form";
	else
		out_put(o, text, n);
}

static int has_metatable(lua_State *L, int idx, const char *key)
{
	int same;

	if (!lua_getmetatable(L, idx))
		return 0;
	push_registry(L, key);
	same = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	return same;
}

static void encode_value(lua_State *L, int idx, struct out *o, int depth);

/* How a plain table (no array mark) is written: an object, unless it is a
 * non-empty sequence 1..n. Returns n for an array, -1 for an object. */
static long table_shape(lua_State *L, int idx)
{
	long count = 0;
	double max = 0;

	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		count++;
		double k = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
		if (k < 1 || k != floor(k)) {
			/* An object, whatever the other keys are. */
			lua_pop(L, 1);
			return -1;
		}
		max = k > max ? k : max;
	}
	return count > 0 && (double)count == max ? count : -1;
}

static void encode_array(lua_State *L, int idx, long n, struct out *o, int depth)
{
	out_put(o, "[", 1);
	for (long i = 1; i <= n && !o->err; i++) {
		if (i > 1)
			out_put(o, ",", 1);
		lua_rawgeti(L, idx, (int)i);
		encode_value(L, lua_gettop(L), o, depth + 1);
		lua_pop(L, 1);
	}
	out_put(o, "]", 1);
}

static void encode_object(lua_State *L, int idx, struct out *o, int depth)
{
	int first = 1;

	out_put(o, "{", 1);
	lua_pushnil(L);
	while (!o->err && lua_next(L, idx)) {
		int top = lua_gettop(L);
		if (!first)
			out_put(o, ",", 1);
		first = 0;
		if (lua_type(L, top - 1) == LUA_TSTRING) {
			size_t klen;
			const char *k = lua_tolstring(L, top - 1, &klen);
			out_string(o, k, klen);
		} else if (lua_type(L, top - 1) == LUA_TNUMBER) {
			/* A number key becomes its text: {[1]=..,x=..} -> {"1":..}. */
			char buf[NUMBER_TEXT_MAX];
			size_t n;
			const char *text = number_text(lua_tonumber(L, top - 1), buf, &n);
			if (text)
				out_string(o, text, n);
			else
				o->err = "NaN and infinity have no JSON form";
		} else {
			o->err = "object keys must be strings or numbers";
		}
		out_put(o, ":", 1);
		encode_value(L, top, o, depth + 1);
		lua_pop(L, 1);
	}
	if (o->err)
		lua_settop(L, idx); /* lua_next stopped early: drop its key */
	out_put(o, "}", 1);
}

static void encode_value(lua_State *L, int idx, struct out *o, int depth)
{
	if (o->err)
		return;
	if (depth > JSONLUA_MAX_DEPTH) {
		o->err = "nested deeper than 64 levels (a cycle?)";
		return;
	}
	luaL_checkstack(L, 4, "JSON nested too deeply");
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		out_put(o, "null", 4);
		return;
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) == NULL) {
			out_put(o, "null", 4);
			return;
		}
		break;
	case LUA_TBOOLEAN:
		if (lua_toboolean(L, idx))
			out_put(o, "true", 4);
		else
			out_put(o, "false", 5);
		return;
	case LUA_TNUMBER:
		out_number(o, lua_tonumber(L, idx));
		return;
	case LUA_TSTRING: {
		size_t len;
		const char *s = lua_tolstring(L, idx, &len);
		out_string(o, s, len);
		return;
	}
	case LUA_TUSERDATA:
		if (has_metatable(L, idx, &number_mt_key)) {
			const char *text = lua_touserdata(L, idx);
			out_put(o, text, strlen(text));
			return;
		}
		if (has_metatable(L, idx, &raw_mt_key)) {
			/* Validated when it was made: written as it is. */
			out_put(o, (const char *)lua_touserdata(L, idx), lua_objlen(L, idx));
			return;
		}
		break;
	case LUA_TTABLE:
		if (has_metatable(L, idx, &array_mt_key)) {
			encode_array(L, idx, (long)lua_objlen(L, idx), o, depth);
		} else {
			long n = table_shape(L, idx);
			if (n > 0)
				encode_array(L, idx, n, o, depth);
			else
				encode_object(L, idx, o, depth);
		}
		return;
	default:
		break;
	}
	o->err = "a value of this type has no JSON form";
}

char *jsonlua_encode(lua_State *L, int idx, size_t *len, const char **err)
{
	struct out o = { 0 };
	int top = lua_gettop(L);

	if (idx < 0)
		idx = top + idx + 1;
	encode_value(L, idx, &o, 0);
	lua_settop(L, top);
	if (o.err) {
		scratch_free(o.p);
		*err = o.err;
		return NULL;
	}
	out_put(&o, "", 1); /* a NUL after the text, not counted */
	*len = o.len - 1;
	return o.p;
}

void jsonlua_push_raw(lua_State *L, const char *json, size_t len)
{
	char *box = lua_newuserdata(L, len ? len : 1);

	memcpy(box, json, len);
	push_registry(L, &raw_mt_key);
	lua_setmetatable(L, -2);
}

const char *jsonlua_args(lua_State *L, int idx, size_t *len, unsigned *nargs, char **owned)
{
	struct out o = { 0 };
	int last = lua_gettop(L);

	*owned = NULL;
	*len = 0;
	while (last >= idx && lua_isnil(L, last))
		last--;
	*nargs = last >= idx ? (unsigned)(last - idx + 1) : 0;
	if (!*nargs)
		return NULL;
	if (*nargs == 1 && lua_type(L, idx) == LUA_TUSERDATA && has_metatable(L, idx, &raw_mt_key)) {
		/* A raw value alone (a stored message the core built) goes as it
		 * is: no copy of it is made. */
		*len = lua_objlen(L, idx);
		return lua_touserdata(L, idx);
	}
	for (int i = idx; i <= last && !o.err; i++) {
		if (i > idx)
			out_put(&o, ",", 1);
		encode_value(L, i, &o, 0);
	}
	if (o.err) {
		scratch_free(o.p);
		luaL_error(L, "json.encode: %s", o.err);
	}
	*len = o.len;
	*owned = o.p;
	return o.p;
}

/* encode(value) -> text; raises on a value with no JSON form. */
static int l_encode(lua_State *L)
{
	struct out o = { 0 };

	luaL_checkany(L, 1);
	lua_settop(L, 1);
	encode_value(L, 1, &o, 0);
	if (o.err) {
		scratch_free(o.p);
		return luaL_error(L, "json.encode: %s", o.err);
	}
	/* The budget may refuse this string: the buffer is then freed when the
	 * call into Lua returns. */
	lua_pushlstring(L, o.p ? o.p : "", o.len);
	scratch_free(o.p);
	return 1;
}

/* raw(text) -> a value that encodes as `text`, which must be one JSON
 * value (checked here, once). */
static int l_raw(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);

	if (json_validate(text, len, JSONLUA_MAX_DEPTH) == JSON_INVALID)
		return luaL_error(L, "json.raw: not one JSON value");
	jsonlua_push_raw(L, text, len);
	return 1;
}

static int l_is_raw(lua_State *L)
{
	lua_pushboolean(L, lua_type(L, 1) == LUA_TUSERDATA && has_metatable(L, 1, &raw_mt_key));
	return 1;
}

/* raw_text(v) -> the text of a raw value */
static int l_raw_text(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TUSERDATA);
	if (!has_metatable(L, 1, &raw_mt_key))
		return luaL_error(L, "json.raw_text: not a raw JSON value");
	lua_pushlstring(L, lua_touserdata(L, 1), lua_objlen(L, 1));
	return 1;
}

/* array([t]) -> t marked as an array (a new empty one without t). */
static int l_array(lua_State *L)
{
	if (lua_isnoneornil(L, 1))
		lua_newtable(L);
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	jsonlua_mark_array(L);
	return 1;
}

static int l_is_array(lua_State *L)
{
	lua_pushboolean(L, lua_type(L, 1) == LUA_TTABLE && has_metatable(L, 1, &array_mt_key));
	return 1;
}

/* number(text) -> a boxed number written as `text` (digits only). */
static int l_number(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);

	if (json_validate(text, len, 1) != JSON_NUMBER || text[0] == ' ')
		return luaL_error(L, "json.number: not a JSON number: %s", text);
	push_boxed_number(L, text, len);
	return 1;
}

static int l_number_tostring(lua_State *L)
{
	lua_pushstring(L, lua_touserdata(L, 1));
	return 1;
}

static int l_number_eq(lua_State *L)
{
	const char *a = lua_touserdata(L, 1), *b = lua_touserdata(L, 2);

	lua_pushboolean(L, a && b && strcmp(a, b) == 0);
	return 1;
}

int jsonlua_open(lua_State *L)
{
	static const luaL_Reg functions[] = {
		{ "decode", l_decode }, { "encode", l_encode }, { "array", l_array },
		{ "is_array", l_is_array }, { "number", l_number }, { "raw", l_raw },
		{ "is_raw", l_is_raw }, { "raw_text", l_raw_text }, { NULL, NULL },
	};

	/* The array metatable carries a name so that a script can tell it. */
	lua_pushlightuserdata(L, (void *)&array_mt_key);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "array");
	lua_setfield(L, -2, "__name");
	lua_rawset(L, LUA_REGISTRYINDEX);

	lua_pushlightuserdata(L, (void *)&raw_mt_key);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "json");
	lua_setfield(L, -2, "__name");
	lua_rawset(L, LUA_REGISTRYINDEX);

	lua_pushlightuserdata(L, (void *)&number_mt_key);
	lua_createtable(L, 0, 3);
	lua_pushcfunction(L, l_number_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushcfunction(L, l_number_eq);
	lua_setfield(L, -2, "__eq");
	lua_pushliteral(L, "number");
	lua_setfield(L, -2, "__name");
	lua_rawset(L, LUA_REGISTRYINDEX);

	lua_newtable(L);
	luaL_register(L, NULL, functions);
	lua_pushlightuserdata(L, NULL);
	lua_setfield(L, -2, "null");
	push_registry(L, &array_mt_key);
	lua_setfield(L, -2, "array_mt");
	return 1;
}
