/* test_pattern.c - core/lua/pattern.c against LuaJIT's own string functions, in
 * one plain LuaJIT state: hand-written cases for every feature and error,
 * then thousands of random patterns and subjects from a fixed seed; every
 * return value and every error message must be the same. Then the budget:
 * asked while a match runs, and able to stop one that would never end.
 * `test_pattern --bench` prints the speed of both on parley's patterns. */
#include "lua/pattern.h"

#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#define RANDOM_PAIRS 12000
/* Mismatches printed in full; later ones are only counted. */
#define SHOW_FAILURES 25

static lua_State *L;
static int compare_ref;
static int shown;

static int budget_calls;
static int budget_stop_at; /* raise on this call; 0: never */

static void test_budget(lua_State *S)
{
	budget_calls++;
	if (budget_stop_at && budget_calls >= budget_stop_at) {
		lua_pushliteral(S, "budget spent");
		lua_error(S);
	}
}

/* The Lua half: compare(kind, args...) runs one call through LuaJIT's
 * function and through ours, each described as one string (values with
 * their types, or the error message; gmatch as every value it yields; gsub
 * with a function also lists the calls the function received). */
static const char compare_lua[] =
	"local mine = ...\n"
	"local orig = { find = string.find, match = string.match,\n"
	"	gmatch = string.gmatch, gsub = string.gsub }\n"
	"local format, concat, select, type, tostring = string.format, table.concat, select, type, tostring\n"
	"local function show(...)\n"
	"	local out = {}\n"
	"	for i = 1, select('#', ...) do\n"
	"		local v = select(i, ...)\n"
	"		if type(v) == 'string' then out[i] = format('%q', v)\n"
	"		elseif type(v) == 'number' then out[i] = format('%.17g', v)\n"
	"		elseif type(v) == 'function' then out[i] = 'function'\n"
	"		else out[i] = tostring(v) end\n"
	"	end\n"
	"	return select('#', ...) .. '[' .. concat(out, ' ') .. ']'\n"
	"end\n"
	"local function pack(...) return { n = select('#', ...), ... } end\n"
	"-- Every call is made from this one line, so errors carry the same place.\n"
	"local function call(f, ...) local r = pack(f(...)) return r end\n"
	"local function run(fns, kind, ...)\n"
	"	local args, log = pack(...), {}\n"
	"	if kind == 'gsub_fn' then\n"
	"		args[3] = function(...)\n"
	"			log[#log + 1] = show(...)\n"
	"			local a = ...\n"
	"			if a == 'a' then return nil end\n"
	"			if a == 'b' then return false end\n"
	"			if a == 'x' then return 7 end\n"
	"			if a == '(' then return {} end\n"
	"			return '<' .. tostring(a) .. '>'\n"
	"		end\n"
	"		kind = 'gsub'\n"
	"	elseif kind == 'gsub_tab' then\n"
	"		args[3] = { a = 'A', b = false, x = 1.5, ['('] = true, [1] = 'one', [3] = 'three', ab = 'AB' }\n"
	"		kind = 'gsub'\n"
	"	end\n"
	"	local ok, r = pcall(call, fns[kind], unpack(args, 1, args.n))\n"
	"	if not ok then return 'error ' .. tostring(r) .. ' ' .. concat(log, ';') end\n"
	"	if kind ~= 'gmatch' then return show(unpack(r, 1, r.n)) .. ' ' .. concat(log, ';') end\n"
	"	local it, out = r[1], {}\n"
	"	for _ = 1, 100 do\n"
	"		local ok2, v = pcall(call, it)\n"
	"		if not ok2 then out[#out + 1] = 'error ' .. tostring(v) break end\n"
	"		out[#out + 1] = show(unpack(v, 1, v.n))\n"
	"		if v[1] == nil then break end\n"
	"	end\n"
	"	return concat(out, ';')\n"
	"end\n"
	"return function(kind, ...) return run(orig, kind, ...), run(mine, kind, ...) end\n";

/* Calls compare with the `nargs` values on the stack; checks that both
 * descriptions are the same, printing `what` when they are not. */
static void expect_same(int nargs, const char *what, int line)
{
	size_t ol, ml;
	const char *o, *m;

	lua_rawgeti(L, LUA_REGISTRYINDEX, compare_ref);
	lua_insert(L, -nargs - 1);
	if (lua_pcall(L, nargs, 2, 0) != 0) {
		check_count(0, __FILE__, line);
		fprintf(stderr, "the comparison itself failed: %s\n", lua_tostring(L, -1));
		lua_pop(L, 1);
		return;
	}
	o = lua_tolstring(L, -2, &ol);
	m = lua_tolstring(L, -1, &ml);
	if (ol == ml && memcmp(o, m, ol) == 0) {
		check_count(1, __FILE__, line);
	} else if (++shown <= SHOW_FAILURES) {
		check_mem(m, ml, o, ol, __FILE__, line, what);
	} else {
		check_count(0, __FILE__, line);
		fputc('\n', stderr);
	}
	lua_pop(L, 2);
}

/* A case written as Lua arguments to compare: "'find', 'abc', 'b', 2". */
static void expect_case(const char *args, int line)
{
	char code[1024];

	snprintf(code, sizeof(code), "return %s", args);
	if (luaL_loadstring(L, code) != 0 || lua_pcall(L, 0, LUA_MULTRET, 0) != 0) {
		check_count(0, __FILE__, line);
		fprintf(stderr, "bad case %s: %s\n", args, lua_tostring(L, -1));
		lua_settop(L, 0);
		return;
	}
	expect_same(lua_gettop(L), args, line);
}

#define SAME(args) expect_case(args, __LINE__)

static void test_plain_find(void)
{
	SAME("'find', 'hello world', 'o w'");
	SAME("'find', 'hello world', 'o', 6");
	SAME("'find', 'hello world', 'o', -3");
	SAME("'find', 'hello world', 'o', -100");
	SAME("'find', 'hello', 'xyz'");
	SAME("'find', 'hello', ''");
	SAME("'find', 'hello', '', 3");
	SAME("'find', 'hello', '', 5");
	SAME("'find', 'hello', '', 6");
	SAME("'find', 'hello', '', 100");
	SAME("'find', '', ''");
	SAME("'find', '', '', 2");
	SAME("'find', 'a.b', '.', 1, true");
	SAME("'find', 'a.b', '.', 1, 0");
	SAME("'find', 'a.b', '.', 1, false");
	SAME("'find', 'a.b', '.', 1, nil");
	SAME("'find', 'a+b', '+'");
	SAME("'find', 'a)b', ')'");
	SAME("'find', 'a]b', ']'");
	SAME("'find', 'a(b', '(', 1, true");
	SAME("'find', 'a%b', '%', 1, true");
	SAME("'find', 'aaab', 'aab'");
	SAME("'find', 'MDB_MAP_FULL: full', 'MDB_MAP_FULL', 1, true");
	SAME("'find', 'a\\0b\\0c', '\\0c'");
	SAME("'find', 'a\\0b', '\\0.'");
	SAME("'find', 'a\\0b', 'a\\0b.'");
	SAME("'find', ('ab'):rep(1000) .. 'c', 'abc'");
	SAME("'find', ('ab'):rep(1000) .. 'c', 'bc', -3");
}

static void test_arguments(void)
{
	SAME("'find', 123, 2");
	SAME("'find', 'abc', 'b', '2'");
	SAME("'find', 'abc', 'b', 'x'");
	SAME("'find', 'abc', 'b', 2.9");
	SAME("'find', 'abc', 'b', -1.5");
	SAME("'find', 'abc', 'a', 1e10");
	SAME("'find', 'abc', 'c', -1e10");
	SAME("'find', 'abc', 'a', 0/0");
	SAME("'find', 'abc', 'b', 2^31");
	SAME("'find', 'abc', 'b', -2^31");
	SAME("'find', 'abc', 'b', 2^31 - 1");
	SAME("'find', 'abc', 'b', {}");
	SAME("'find', 'abc', 'b', true");
	SAME("'find', nil, 'a'");
	SAME("'find', 'a', nil");
	SAME("'find', 'a', {}");
	SAME("'find'");
	SAME("'match', 'abc', '%a', 1e10");
	SAME("'match', 'abc', 'b', 10");
	SAME("'match', 'abc', '', 10");
	SAME("'match', 'abc', '()', -1");
	SAME("'match', 'abc'");
	SAME("'gmatch', nil");
	SAME("'gmatch', 'a'");
	SAME("'gmatch', 123, 2");
	SAME("'gsub', 'abc', 'b'");
	SAME("'gsub', 'abc', 'b', nil, 'x'");
	SAME("'gsub', 'abc', 'b', 'x', 'y'");
	SAME("'gsub', 'abc', 'b', true");
	SAME("'gsub', 'abc', 'b', 12");
	SAME("'gsub', 'abc', 'b', 1.5");
	SAME("'gsub', 12, 2, 3");
	SAME("'gsub', 'abc', '.', 'x', 2.7");
	SAME("'gsub', 'abc', '.', 'x', -1");
	SAME("'gsub', 'abc', '.', 'x', 0");
	SAME("'gsub', 'abc', '.', 'x', 1e10");
	SAME("'gsub', 'abc', '.', 'x', 0/0");
	SAME("'gsub', 'abc', '.', 'x', '2'");
}

static void test_classes(void)
{
	/* %g is LuaJIT's too (from Lua 5.2): printable but not space. */
	static const char classes[] = "acdglpsuwxzACDGLPSUWXZ";
	char args[128];

	/* Every class and its complement over every byte. */
	for (const char *c = classes; *c; c++) {
		snprintf(args, sizeof(args), "'gsub', all_bytes, '%%%c', '.'", *c);
		SAME(args);
		snprintf(args, sizeof(args), "'gsub', all_bytes, '[%%%c]+', '<%%0>'", *c);
		SAME(args);
		snprintf(args, sizeof(args), "'gsub', all_bytes, '[^%%%c]', ''", *c);
		SAME(args);
	}
	SAME("'gsub', all_bytes, '%.', '!'");
	SAME("'gsub', all_bytes, '%%', '!'");
	SAME("'gsub', all_bytes, '%Q', '!'");
	SAME("'gsub', all_bytes, '%q', '!'");
	SAME("'gsub', all_bytes, '%\\255', '!'");
	SAME("'gsub', all_bytes, '[\\128-\\255]', ''");
	SAME("'gsub', all_bytes, '[a-z0-9_]', ''");
	SAME("'gsub', all_bytes, '[^a-z0-9_]', ''");
	SAME("'gsub', all_bytes, '.', '%0'");
	SAME("'match', 'a.b', '%.'");
	SAME("'match', 'aQb', '%Q'");
	SAME("'find', 'a\\0b', '%z'");
	SAME("'find', 'a\\0b', '[%z]'");
	SAME("'find', 'a\\0b', '%Z+'");
	SAME("'find', 'a\\0b', '[\\0]'");
	SAME("'find', 'a\\0b', '.\\0'");
}

static void test_sets(void)
{
	SAME("'find', 'abc', '[%a-z]'");
	SAME("'find', 'a-z', '[a-]'");
	SAME("'find', '-', '[-a]'");
	SAME("'find', ']', '[]]'");
	SAME("'find', 'a]', '[]a]+'");
	SAME("'find', '^', '[^^]'");
	SAME("'find', 'x^', '[x^]+'");
	SAME("'find', 'a', '[^]'");
	SAME("'find', 'a]', '[^]a]'");
	SAME("'find', 'b]', '[^]a]'");
	SAME("'find', 'a', '[a%'");
	SAME("'find', 'a]', '[a%]'");
	SAME("'find', 'a]', '[a%]]'");
	SAME("'find', 'a', '[]'");
	SAME("'find', 'a', '['");
	SAME("'find', 'a', '[^'");
	SAME("'find', 'x-', '[a-%]]+'");
	SAME("'find', '%', '[a-%d]'");
	SAME("'find', 'c', '[c-a]'");
	SAME("'find', 'b', '[a-c-e]'");
	SAME("'find', '-', '[a-c-e]'");
	SAME("'find', 'hello', '[l]+'");
	SAME("'find', 'hello', '[^l]+', 3");
	SAME("'find', 'ab12', '[%d%a]+'");
	SAME("'find', 'ab12', '[%D]+'");
	SAME("'find', 'a b', '[%s]'");
}

static void test_quantifiers_and_anchors(void)
{
	SAME("'find', 'aaab', 'a*'");
	SAME("'find', 'aaab', 'a*b'");
	SAME("'find', 'aaab', 'a+b'");
	SAME("'find', 'aaab', 'a-b'");
	SAME("'find', 'aaab', 'a?b'");
	SAME("'find', 'b', 'a+'");
	SAME("'find', 'xay', 'x.-y'");
	SAME("'find', 'xaay', 'x.*y'");
	SAME("'match', 'key = value', '(%w+)%s*=%s*(%w+)'");
	SAME("'match', '  trim  ', '^%s*(.-)%s*$'");
	SAME("'find', 'x', 'x*+'");
	SAME("'find', 'x', '*'");
	SAME("'find', '*x', '*x'");
	SAME("'find', '+x', '+'");
	SAME("'find', '-', '-'");
	SAME("'find', 'a?', '?'");
	SAME("'find', 'x', '$^'");
	SAME("'find', 'x$', 'x$$'");
	SAME("'find', 'x$y', '$y'");
	SAME("'find', 'x', '^'");
	SAME("'find', 'x', '$'");
	SAME("'find', '^x', '^^x'");
	SAME("'find', 'ab', '^b'");
	SAME("'find', 'ab', 'a$'");
	SAME("'find', 'ab', 'b$'");
	SAME("'find', 'ab', '$*'");
	SAME("'find', 'ab', 'b', 3");
	SAME("'match', 'hello', '^(h)(.)'");
	SAME("'match', 'a^b', '^b'");
	SAME("'gsub', 'abc', '^.', '-'");
	SAME("'gsub', 'abc', '^', '-'");
	SAME("'gsub', 'abc', '$', '-'");
	SAME("'gsub', 'abc', '^$', '-'");
	SAME("'gsub', '', '^$', '-'");
	SAME("'gmatch', 'a^b^', '^.'");
	SAME("'gmatch', 'ab', '$'");
}

static void test_captures(void)
{
	SAME("'match', 'abc', '()b()'");
	SAME("'find', 'abc', '()b()'");
	SAME("'find', 'abc', '(b)(c)'");
	SAME("'match', 'abc', '((a)(b))'");
	SAME("'match', 'x', '(())'");
	SAME("'match', 'x', '(()'");
	SAME("'find', 'x', '(()'");
	SAME("'find', 'a', '(a'");
	SAME("'match', 'a', 'a)'");
	SAME("'find', 'a', 'a)'");
	SAME("'match', 'a', ')'");
	SAME("'match', 'a', '%1'");
	SAME("'match', 'a', '%0'");
	SAME("'match', 'a', '(a)%2'");
	SAME("'match', 'aa', '(a)%1'");
	SAME("'match', 'ab', '(a)%1'");
	SAME("'match', 'aa', '()a%1'");
	SAME("'match', 'abab', '(ab)%1'");
	SAME("'match', 'abab', '((a)b)%2'");
	SAME("'match', 'aa', '(a%1)'");
	SAME("'match', '\"x\" \"\"', '([\"\\'])(.-)%1'");
	SAME("'find', '', ('()'):rep(32)");
	SAME("'find', '', ('()'):rep(33)");
	SAME("'match', ('a'):rep(40), ('(a)'):rep(32)");
	SAME("'match', ('a'):rep(40), ('(a)'):rep(33)");
	SAME("'match', 'hello world', '(h)(e)(l)(l)(o)( )(w)(o)(r)%9'");
}

static void test_balance_and_frontier(void)
{
	SAME("'match', 'f(a(b)c) d', '%b()'");
	SAME("'match', 'f(a(b c) d', '%b()'");
	SAME("'match', '\"a\" \"b\"', '%b\"\"'");
	SAME("'match', 'xaby', '%bab'");
	SAME("'match', 'a', '%b'");
	SAME("'match', 'a', '%ba'");
	SAME("'match', '', '%bab'");
	SAME("'match', '(x)*', '%b()*'");
	SAME("'gsub', 'a (b (c)) (d', '%b()', '[]'");
	SAME("'find', 'THE (quick) fox', '%f[%a]%a+', 5");
	SAME("'gsub', 'THE (quick) fox', '%f[%a]%a+', '<%0>'");
	SAME("'gsub', 'hello world', '%f[%w]', '|'");
	SAME("'gsub', 'hello world', '%f[%W]', '|'");
	SAME("'match', 'x', '%f[%a'");
	SAME("'match', 'x', '%f'");
	SAME("'match', 'x', '%fx'");
	SAME("'match', 'x', 'x%f[%z]'");
	SAME("'match', 'x', '%f[^\\0]'");
	SAME("'match', 'x', '%f[^%z]'");
	SAME("'find', 'ab', '%f[b]', 2");
	SAME("'find', 'ab', '%f[a]', 2");
}

static void test_errors(void)
{
	SAME("'find', 'a', '%'");
	SAME("'find', 'abc', 'x%'");
	SAME("'find', 'x', 'x%'");
	SAME("'find', 'a', '[a'");
	SAME("'gsub', 'abc', '[', 'x', 0");
	SAME("'gsub', 'abc', '[', 'x', 1");
	SAME("'gmatch', 'abc', '%'");
	SAME("'gmatch', 'abc', '[a'");
	SAME("'gmatch', 'abc', '(a'");
	SAME("'match', ('a'):rep(300), ('a?'):rep(300)");
	SAME("'match', ('a'):rep(199), ('a?'):rep(199)");
	SAME("'match', ('a'):rep(200), ('a?'):rep(200)");
	SAME("'find', '', ('a*'):rep(199)");
	SAME("'find', '', ('a*'):rep(200)");
	SAME("'find', 'zzzz', ('a*'):rep(150) .. 'y'");
	SAME("'find', ('ab'):rep(200), ('a+b'):rep(200)");
	SAME("'find', ('ab'):rep(200), ('a-b'):rep(199)");
	SAME("'gsub', 'zzzz', ('a*'):rep(150), ''");
	SAME("'find', ('a'):rep(250), ('a'):rep(250) .. '.'");
	SAME("'find', ('(x)'):rep(100), ('%b()'):rep(100) .. '.'");
}

static void test_gsub(void)
{
	SAME("'gsub', 'hello world', '%w+', '%0 %0', 1");
	SAME("'gsub', 'hello world', '(%w+) (%w+)', '%2 %1'");
	SAME("'gsub', 'abc', '%w', '%1'");
	SAME("'gsub', 'abc', 'b', '%2'");
	SAME("'gsub', 'abc', '(b)', '%2'");
	SAME("'gsub', 'abc', 'b', '%a%%'");
	SAME("'gsub', 'abc', 'b', '%'");
	SAME("'gsub', 'abc', 'b', 'x%'");
	SAME("'gsub', 'abc', '%w', '%z'");
	SAME("'gsub', 'abc', 'a*', '-'");
	SAME("'gsub', 'abc', '', '-'");
	SAME("'gsub', 'abc', '', '-', 2");
	SAME("'gsub', '', '', 'x'");
	SAME("'gsub', 'x', '()', '%1'");
	SAME("'gsub', 'x', '(()', 'a'");
	SAME("'gsub', 'x', '(()', '%1'");
	SAME("'gsub', 'abc', '(b)()', '%2%1'");
	SAME("'gsub', 'a b c', ' ', ''");
	SAME("'gsub', 'a\\0b', '%z', '%%'");
	SAME("'gsub', 'abc', 'b', {}");
	SAME("'gsub', 'abc', 'b', {b = true}");
	SAME("'gsub', 'abc', 'b', {b = 1.5}");
	SAME("'gsub', 'abc', 'b', {b = false}");
	SAME("'gsub', 'abc', '.', {a = 1, b = true}");
	SAME("'gsub', 'abc', '.', setmetatable({}, {__index = function(t, k) return k:upper() end})");
	SAME("'gsub', 'x', '()', {}");
	SAME("'gsub_tab', 'abx(ab', '.'");
	SAME("'gsub_tab', 'abx(ab', 'ab'");
	SAME("'gsub_tab', 'abx(ab', '()a'");
	SAME("'gsub_fn', 'abx(ab c', '.'");
	SAME("'gsub_fn', 'abc', '(a)(b)'");
	SAME("'gsub_fn', 'abc', '()'");
	SAME("'gsub_fn', 'cab', 'c'");
	SAME("'gsub', 'abc', '(b)()', function(a, b) return a .. b end");
	SAME("'gsub', 'abc', '.', function() error('mine') end");
	SAME("'gsub', 'abc', '.', function() return 'x', 'y' end");
	SAME("'gsub', ('abc'):rep(1000), 'b', 'XY'");
	SAME("'gsub', ('abc'):rep(1000), '[ac]+', '%0%0', 500");
	SAME("'gsub', ('a,b;'):rep(100), '[,;]', {[','] = ';', [';'] = ','}");
	SAME("'gsub', '/api/rooms/:id/messages/:mid', ':[^/]+', ':'");
	SAME("'gsub', 'x', 'x', ('%0'):rep(1000)");
}

/* Subjects long enough for the scan to where the first item fits. */
static void test_first_item_scan(void)
{
	static const char *patterns[] = {
		"q", "q+", "q*", "q-", "q?", "%z", "%z+", "%.", "%q", "%a", "%d+", "%D",
		"[q]", "[^x]", "[%d_]+", "[qr]r", ".", ".+", "$", "$q", "()q", "(q)",
		"%bq.", "%f[q]", "^q", "q$", "[q", "%", "q%", "(q", "q)", "%1",
	};
	static const char *subjects[] = {
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxq", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		"xxxxxxqxxxxxxxxxxxxxxxxxxxxqqrxxxxxx1_2x", "xxxxxxxxxxxxxxxxxxx\0xxxx.xx",
		"qqqqq", "", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx7",
	};
	char args[256];

	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		for (size_t j = 0; j < sizeof(subjects) / sizeof(subjects[0]); j++) {
			static const char *kinds[] = { "find", "match", "gmatch", "gsub_fn" };

			for (size_t k = 0; k < 4; k++) {
				snprintf(args, sizeof(args), "'%s', '%s', '%s'", kinds[k],
					 subjects[j], patterns[i]);
				SAME(args);
			}
			snprintf(args, sizeof(args), "'gsub', '%s', '%s', '<%%0>', 2", subjects[j],
				 patterns[i]);
			SAME(args);
			snprintf(args, sizeof(args), "'find', '%s', '%s', 9", subjects[j], patterns[i]);
			SAME(args);
		}
	}
}

static void test_gmatch(void)
{
	SAME("'gmatch', 'abc', 'a*'");
	SAME("'gmatch', 'a=1, b=2', '(%w+)=(%w+)'");
	SAME("'gmatch', 'one two  three', '%a+'");
	SAME("'gmatch', '/api/rooms/lobby', '[^/]+'");
	SAME("'gmatch', 'abc', ''");
	SAME("'gmatch', 'abc', '()'");
	SAME("'gmatch', 'abc', '.-'");
	SAME("'gmatch', '', '.*'");
	SAME("'gmatch', 'a;b;;c', '([^;]*)'");
	SAME("'gmatch', 'x1y22z333', '%d+'");
	SAME("'gmatch', 'hello', '(l)(l)'");
}

/* Parley's own patterns (scripts, plugins, the runtime). */
static void test_parley_patterns(void)
{
	SAME("'find', 'no zero here', '%z'");
	SAME("'find', 'a zero\\0here', '%z'");
	SAME("'match', 'Bearer abc.def.ghi', '^[Bb]earer%s+(%S+)%s*$'");
	SAME("'match', 'bearer  abc  ', '^[Bb]earer%s+(%S+)%s*$'");
	SAME("'match', 'Basic abc', '^[Bb]earer%s+(%S+)%s*$'");
	SAME("'match', 'eyJh.eyJz.c2ln', '^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$'");
	SAME("'match', 'eyJh.eyJz', '^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$'");
	SAME("'match', 'plugins/x/init.lua', '^(.*)/init%.lua$'");
	SAME("'match', 'scripts/chat.lua', '^(.*)/init%.lua$'");
	SAME("'match', 'GET /api/rooms/:id', '^(%u+)%s+(/api/%S*)$'");
	SAME("'match', 'user\\0rest', '%z(.*)$'");
	SAME("'match', '2024-05-06T07:08:09.123Z', '^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)%.(%d+)Z$'");
	SAME("'gmatch', 'a;b;c', '[^;]+'");
	SAME("'gmatch', 'testkit,chat,,x', '[^,]+'");
}

/* ---- random cases from a fixed seed ---- */

static uint64_t rng = 0x2545F4914F6CDD1DULL;

static unsigned next_rand(unsigned n)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned)(rng >> 33) % n;
}

static char pick(const char *from)
{
	return from[next_rand((unsigned)strlen(from))];
}

struct text {
	char s[96];
	size_t len;
};

static void put(struct text *t, const char *s)
{
	size_t n = strlen(s);

	if (t->len + n < sizeof(t->s)) {
		memcpy(t->s + t->len, s, n);
		t->len += n;
	}
}

static void put_char(struct text *t, char c)
{
	char s[2] = { c, 0 };

	put(t, s);
}

/* Any bytes of the pattern alphabet: mostly malformed, which tests errors. */
static void random_raw_pattern(struct text *t)
{
	unsigned n = next_rand(9);

	for (unsigned i = 0; i < n; i++)
		put_char(t, pick(".%%ab()[]^$*+-?abxAfdgswzSW0129 "));
}

static void random_items(struct text *t, int depth);

/* One pattern item, well formed most of the time. */
static void random_item(struct text *t, int depth)
{
	switch (next_rand(12)) {
	case 0:
	case 1:
	case 2:
		put_char(t, pick("abx .-)(^$"));
		break;
	case 3:
		put(t, ".");
		break;
	case 4:
		put_char(t, '%');
		put_char(t, pick("adgswxpulczADGSWX.%()[]-b"));
		break;
	case 5:
		put(t, "[");
		if (next_rand(3) == 0)
			put(t, "^");
		for (unsigned i = next_rand(3) + 1; i > 0; i--) {
			switch (next_rand(5)) {
			case 0: put(t, "a-c"); break;
			case 1: put_char(t, '%'); put_char(t, pick("adsA]%-")); break;
			case 2: put(t, "]"); break;
			default: put_char(t, pick("ab x(-^.")); break;
			}
		}
		put(t, "]");
		break;
	case 6:
		if (depth < 2) {
			put(t, "(");
			random_items(t, depth + 1);
			put(t, ")");
		} else {
			put(t, "()");
		}
		break;
	case 7:
		put(t, next_rand(2) ? "()" : "%b()");
		return;
	case 8:
		put(t, next_rand(2) ? "%bab" : "%b\"\"");
		return;
	case 9:
		put(t, next_rand(2) ? "%f[%a]" : "%f[^a ]");
		return;
	case 10:
		put_char(t, '%');
		put_char(t, pick("1123"));
		return;
	default:
		put_char(t, pick("ab"));
		break;
	}
	if (next_rand(2))
		put_char(t, pick("*+-?"));
}

static void random_items(struct text *t, int depth)
{
	for (unsigned n = next_rand(4) + 1; n > 0; n--)
		random_item(t, depth);
}

static void random_pattern(struct text *t)
{
	t->len = 0;
	if (next_rand(3) == 0) {
		random_raw_pattern(t);
		return;
	}
	if (next_rand(4) == 0)
		put(t, "^");
	random_items(t, 0);
	if (next_rand(4) == 0)
		put(t, "$");
}

/* Mostly short; one in four long enough for the scan that skips to where
 * the first item fits (after SCAN_AFTER failed attempts). */
static void random_subject(struct text *t)
{
	unsigned n = next_rand(4) ? next_rand(11) : next_rand(31);

	t->len = 0;
	for (unsigned i = 0; i < n; i++)
		put_char(t, pick("aaabbbx ()[]\"^$.%-1A"));
}

static void describe(char *out, size_t cap, const char *kind, const struct text *s,
		     const struct text *p)
{
	snprintf(out, cap, "%s(\"%.*s\", \"%.*s\")", kind, (int)s->len, s->s, (int)p->len, p->s);
}

static void compare_random(const char *kind, const struct text *s, const struct text *p,
			   int extra, const char *extra_s, long long extra_n, int plain)
{
	char what[256];

	describe(what, sizeof(what), kind, s, p);
	lua_pushstring(L, kind);
	lua_pushlstring(L, s->s, s->len);
	lua_pushlstring(L, p->s, p->len);
	if (extra == 's')
		lua_pushstring(L, extra_s);
	else if (extra == 'n')
		lua_pushinteger(L, (lua_Integer)extra_n);
	else if (extra == 'b')
		lua_pushnil(L);
	if (extra == 'b') {
		lua_pushboolean(L, plain);
		expect_same(5, what, __LINE__);
		return;
	}
	if (extra == 'm') {
		lua_pushstring(L, extra_s);
		lua_pushinteger(L, (lua_Integer)extra_n);
		expect_same(5, what, __LINE__);
		return;
	}
	expect_same(extra ? 4 : 3, what, __LINE__);
}

static void test_random(void)
{
	static const char *templates[] = { "", "-", "%0", "%1", "<%1%2>", "%%", "%", "x%ay" };
	struct text s, p;

	for (int i = 0; i < RANDOM_PAIRS; i++) {
		random_pattern(&p);
		random_subject(&s);
		compare_random("find", &s, &p, 0, NULL, 0, 0);
		compare_random("find", &s, &p, 'n', NULL, (long long)next_rand(14) - 3, 0);
		compare_random("find", &s, &p, 'b', NULL, 0, 1);
		compare_random("match", &s, &p, 0, NULL, 0, 0);
		compare_random("match", &s, &p, 'n', NULL, (long long)next_rand(14) - 3, 0);
		compare_random("gmatch", &s, &p, 0, NULL, 0, 0);
		compare_random("gsub", &s, &p, 's', templates[next_rand(8)], 0, 0);
		compare_random("gsub", &s, &p, 'm', templates[next_rand(8)],
			       (long long)next_rand(5) - 1, 0);
		compare_random("gsub_fn", &s, &p, 0, NULL, 0, 0);
		compare_random("gsub_tab", &s, &p, 0, NULL, 0, 0);
	}
}

/* ---- the budget ---- */

/* Runs `code`, which must return one string or number; returns it as text
 * in `out`. */
static void run_lua(const char *code, char *out, size_t cap)
{
	if (luaL_loadstring(L, code) != 0 || lua_pcall(L, 0, 1, 0) != 0) {
		snprintf(out, cap, "lua error: %s", lua_tostring(L, -1));
	} else {
		const char *s = lua_tostring(L, -1);

		snprintf(out, cap, "%s", s ? s : "(nil)");
	}
	lua_settop(L, 0);
}

static void test_budget_is_asked(void)
{
	char out[256];

	/* About n^2/2 = 12.5M steps, the budget asked every 4096 of them. */
	budget_calls = 0;
	budget_stop_at = 0;
	run_lua("return tostring(mine.find(('a'):rep(5000), '.-b'))", out, sizeof(out));
	CHECK_STR(out, "nil");
	CHECK(budget_calls >= 12500000 / PATTERN_CHECK_STEPS / 2);

	/* Steps add up over the matches of one gsub. */
	budget_calls = 0;
	run_lua("return select(2, mine.gsub(('a'):rep(100000), 'a', 'b'))", out, sizeof(out));
	CHECK_STR(out, "100000");
	CHECK(budget_calls >= 100000 / PATTERN_CHECK_STEPS);

	/* And over a scan for the first item. */
	budget_calls = 0;
	run_lua("return tostring(mine.find(('a'):rep(100000), '%z'))", out, sizeof(out));
	CHECK_STR(out, "nil");
	CHECK(budget_calls >= 1);
}

static void test_budget_stops(void)
{
	static const char *runaways[] = {
		"return select(2, pcall(mine.find, ('a'):rep(2000), '.-.-.-.-.-.-x'))",
		"return select(2, pcall(mine.match, ('a'):rep(2000), '(.-)(.-)(.-)(.-)(.-)x'))",
		"return select(2, pcall(mine.gmatch(('a'):rep(2000), '.-.-.-.-.-.-x')))",
		"return select(2, pcall(mine.gsub, ('a'):rep(2000), '.*.*.*.*.*.*x', ''))",
		"return select(2, pcall(mine.find, ('a'):rep(60), ('a?'):rep(60) .. ('a'):rep(60)))",
		"return select(2, pcall(mine.find, ('ab'):rep(3000), '(.-)%1%1%1x'))",
	};
	char out[256];

	for (size_t i = 0; i < sizeof(runaways) / sizeof(runaways[0]); i++) {
		budget_calls = 0;
		budget_stop_at = 3;
		run_lua(runaways[i], out, sizeof(out));
		if (!CHECK_STR(out, "budget spent"))
			fprintf(stderr, "  in: %s\n", runaways[i]);
		CHECK_INT(budget_calls, 3);
	}
	budget_stop_at = 0;
}

/* Installed in the string table, the functions serve s:find as well. */
static void test_string_table(void)
{
	lua_State *S = luaL_newstate();

	luaL_openlibs(S);
	lua_getglobal(S, "string");
	pattern_register(S, test_budget);
	lua_pop(S, 1);
	budget_calls = 0;
	CHECK(luaL_dostring(S, "return (('a'):rep(5000)):find('.-b') == nil and"
				 " ('key=v'):match('(%w+)=') == 'key' and"
				 " ('a.b'):gsub('%.', '/') == 'a/b'") == 0);
	CHECK(lua_toboolean(S, -1));
	CHECK(budget_calls > 0);
	CHECK_INT(lua_gettop(S), 1);
	lua_close(S);
}

/* ---- the benchmark (test_pattern --bench) ---- */

/* Each case runs over 8 subjects that differ in one digit (the '#' of the
 * subjects below), so that LuaJIT's JIT compiler cannot hoist a call out of
 * the loop; a figure is the best of 5 runs, in ns per call. */
static const char bench_lua[] =
	"local orig, mine, jit_on = ...\n"
	"local function words(n) local t = {} for i = 1, n do t[i] = 'word' .. i end return table.concat(t, ' ') .. '#' end\n"
	"local msg = ('hello everyone, this is a chat message '):rep(3) .. '#'\n"
	"local jwt = 'eyJhbGciOiJIUzI1NiJ9.' .. ('eyJzdWIiOiIxMjM0NTY3ODkwIn0'):rep(4) .. '.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c#'\n"
	"local cases = {\n"
	"	{ 'find %z, 120 bytes (messages.lua)', 'find', msg, '%z' },\n"
	"	{ 'find %z, 2000 bytes', 'find', ('x'):rep(2000) .. '#', '%z' },\n"
	"	{ 'find plain, 4th arg true (messages)', 'find', 'store #: MDB_MAP_FULL: mapsize reached', 'MDB_MAP_FULL', 1, true },\n"
	"	{ 'find without specials', 'find', msg, 'chat' },\n"
	"	{ 'find on 4 bytes', 'find', '/ap#', '[^/]+' },\n"
	"	{ 'find %d+', 'find', msg, '%d+' },\n"
	"	{ 'match bearer (auth.lua)', 'match', 'Bearer ' .. jwt, '^[Bb]earer%s+(%S+)%s*$' },\n"
	"	{ 'match jwt parts (auth.lua)', 'match', jwt, '^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$' },\n"
	"	{ 'match %z(.*)$ (ratelimit)', 'match', 'user:4#\\0send', '%z(.*)$' },\n"
	"	{ 'match timestamp (edits)', 'match', '2024-05-06T07:08:09.12#Z', '^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)%.(%d+)Z$' },\n"
	"	{ 'match (.*)/init%.lua$ (runtime)', 'match', 'plugins/reactions#/init.lua', '^(.*)/init%.lua$' },\n"
	"	{ 'match key = value', 'match', 'name = parley#', '^(%w+)%s*=%s*(%w+)$' },\n"
	"	{ 'gmatch [^/]+, 5 segments (runtime)', 'gmatch', '/api/rooms/lobby/messages/4#', '[^/]+' },\n"
	"	{ 'gmatch %a+ over 100 words', 'gmatch', words(100), '%a+' },\n"
	"	{ 'gsub :[^/]+ (runtime routes)', 'gsub', '/api/rooms/:id/messages/:mi#', ':[^/]+', ':' },\n"
	"	{ 'gsub %s+ over 100 words', 'gsub', words(100), '%s+', ' ' },\n"
	"	{ 'gsub . with a table', 'gsub', 'hello#', '.', { h = 'H', o = '0' } },\n"
	"	{ 'gsub with a function', 'gsub', 'a,b,c,d#', '%a', string.upper },\n"
	"}\n"
	"local function runner(fns, kind)\n"
	"	if kind == 'gmatch' then\n"
	"		local g = fns.gmatch\n"
	"		return function(s, p) for _ in g(s, p) do end end\n"
	"	end\n"
	"	return fns[kind]\n"
	"end\n"
	"local function time(f, n, subjects, b, c, d)\n"
	"	local t0 = os.clock()\n"
	"	for i = 1, n do f(subjects[i % 8 + 1], b, c, d) end\n"
	"	return os.clock() - t0\n"
	"end\n"
	"if jit_on then jit.on() else jit.off() end\n"
	"jit.flush()\n"
	"print(jit_on and '-- JIT on (as the runtime runs)' or '-- interpreted (as scripts run: jit.off)')\n"
	"print(string.format('%-38s %10s %10s %7s', 'ns per call', 'LuaJIT', 'parley', 'ratio'))\n"
	"local sum_o, sum_m = 0, 0\n"
	"for _, c in ipairs(cases) do\n"
	"	local fo, fm = runner(orig, c[2]), runner(mine, c[2])\n"
	"	local subjects = {}\n"
	"	for i = 1, 8 do subjects[i] = c[3]:gsub('#', i) end\n"
	"	local n = 1000\n"
	"	while time(fo, n, subjects, c[4], c[5], c[6]) < 0.04 do n = n * 2 end\n"
	"	local to, tm = math.huge, math.huge\n"
	"	for _ = 1, 5 do\n"
	"		to = math.min(to, time(fo, n, subjects, c[4], c[5], c[6]))\n"
	"		tm = math.min(tm, time(fm, n, subjects, c[4], c[5], c[6]))\n"
	"	end\n"
	"	sum_o, sum_m = sum_o + to / n, sum_m + tm / n\n"
	"	print(string.format('%-38s %10.0f %10.0f %7.2f', c[1], to / n * 1e9, tm / n * 1e9, tm / to))\n"
	"end\n"
	"print(string.format('%-38s %10.0f %10.0f %7.2f', 'all cases, one call each', sum_o * 1e9, sum_m * 1e9, sum_m / sum_o))\n";

static int bench(void)
{
	for (int jit_on = 0; jit_on <= 1; jit_on++) {
		if (luaL_loadstring(L, bench_lua) != 0) {
			fprintf(stderr, "%s\n", lua_tostring(L, -1));
			return 1;
		}
		lua_getglobal(L, "orig");
		lua_getglobal(L, "mine");
		lua_pushboolean(L, jit_on);
		if (lua_pcall(L, 3, 0, 0) != 0) {
			fprintf(stderr, "%s\n", lua_tostring(L, -1));
			return 1;
		}
	}
	return 0;
}

static void state_open(void)
{
	static const char all_bytes[] =
		"local t = {} for i = 0, 255 do t[#t + 1] = string.char(i) end"
		" all_bytes = table.concat(t)"
		" orig = { find = string.find, match = string.match,"
		" gmatch = string.gmatch, gsub = string.gsub }";

	L = luaL_newstate();
	luaL_openlibs(L);
	lua_newtable(L);
	pattern_register(L, test_budget);
	lua_pushvalue(L, -1);
	lua_setglobal(L, "mine");
	if (luaL_loadstring(L, compare_lua) != 0) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		exit(1);
	}
	lua_insert(L, -2);
	lua_call(L, 1, 1);
	compare_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	if (luaL_dostring(L, all_bytes) != 0) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	int rc;

	state_open();
	if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
		rc = bench();
		lua_close(L);
		return rc;
	}
	test_plain_find();
	test_arguments();
	test_classes();
	test_sets();
	test_quantifiers_and_anchors();
	test_captures();
	test_balance_and_frontier();
	test_errors();
	test_gsub();
	test_gmatch();
	test_first_item_scan();
	test_parley_patterns();
	test_random();
	test_budget_is_asked();
	test_budget_stops();
	test_string_table();
	lua_close(L);
	return check_report("test_pattern");
}
