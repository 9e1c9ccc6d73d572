/* pattern.c - Lua 5.1 pattern matching with a step budget (see pattern.h).
 * The matcher reads the pattern text as it goes, recursing only where it may
 * have to come back (a capture, a quantifier), which is also the depth that
 * LuaJIT limits; find, match, gmatch and gsub sit on top, with two fast
 * paths: memmem for a plain find, and a scan for where the first item fits. */
#define _GNU_SOURCE /* memmem */
#include "lua/pattern.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define MAX_CAPTURES 32
/* Nested matcher calls allowed, LuaJIT's limit: then "pattern too complex". */
#define MAX_DEPTH 200
/* A capture's length while it is open, and for a position capture `()`. */
#define CAP_OPEN (-1)
#define CAP_POSITION (-2)
/* Failed attempts before a search sets up the scan for its first item: a
 * short subject is done sooner without it. */
#define SCAN_AFTER 4

/* What a subject byte is, for the classes %a %c %d %g %l %p %s %u %w %x %z
 * (%g, printable but not space, is LuaJIT's too, from Lua 5.2): ASCII
 * whatever the locale, as LuaJIT's own tables. */
enum {
	K_ALPHA = 1 << 0,
	K_CNTRL = 1 << 1,
	K_DIGIT = 1 << 2,
	K_LOWER = 1 << 3,
	K_PUNCT = 1 << 4,
	K_SPACE = 1 << 5,
	K_UPPER = 1 << 6,
	K_XDIGIT = 1 << 7,
	K_ZERO = 1 << 8,
	K_GRAPH = 1 << 9,
};

/* A set of bytes, for scanning a run of one item fast. */
struct byteset {
	uint64_t bits[4];
};

static uint16_t byte_kinds[256];
/* A class letter (lower case) -> the kinds it accepts; 0 for other bytes,
 * which after '%' stand for themselves. */
static uint16_t class_kinds[256];
/* A class letter (lower case) -> the bytes it accepts. */
static struct byteset class_bytes[256];
/* Bytes that make find's pattern a pattern rather than plain text. */
static unsigned char find_specials[256];

/* Shared by the four functions (and gmatch's iterators) as first upvalue. */
struct pattern_env {
	pattern_budget_fn budget;
};

struct capture {
	const char *start;
	ptrdiff_t len; /* CAP_OPEN, CAP_POSITION or the length */
};

struct matcher {
	lua_State *L;
	const char *src; /* the whole subject: a frontier looks before init */
	const char *src_end;
	long fuel;  /* steps left before the budget is asked again */
	int depth;  /* nested match_here calls */
	int level;  /* captures begun */
	struct capture cap[MAX_CAPTURES];
};

/* The first item of a pattern when it is one character with no quantifier
 * or with '+': a position it rejects is an attempt that fails at once,
 * recursing nowhere, so skipping such positions changes only the time. */
struct first_item {
	enum { SCAN_NONE, SCAN_BYTE, SCAN_SET } how;
	int byte;
	const char *p, *ep;  /* the item, for SCAN_SET */
	int set_made;        /* `set` holds the item's bytes */
	struct byteset set;
};

static inline int byteset_has(const struct byteset *b, int c)
{
	return (int)((b->bits[c >> 6] >> (c & 63)) & 1);
}

static inline void byteset_add(struct byteset *b, int c)
{
	b->bits[c >> 6] |= UINT64_C(1) << (c & 63);
}

static void tables_init(void)
{
	static int done;

	if (done)
		return;
	for (int c = 0; c < 256; c++) {
		uint16_t k = 0;

		if (c >= 'a' && c <= 'z')
			k |= K_ALPHA | K_LOWER;
		if (c >= 'A' && c <= 'Z')
			k |= K_ALPHA | K_UPPER;
		if (c >= '0' && c <= '9')
			k |= K_DIGIT | K_XDIGIT;
		if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
			k |= K_XDIGIT;
		if (c < 32 || c == 127)
			k |= K_CNTRL;
		if (c == ' ' || (c >= '\t' && c <= '\r'))
			k |= K_SPACE;
		if (c > 32 && c < 127)
			k |= K_GRAPH;
		if (c > 32 && c < 127 && !(k & (K_ALPHA | K_DIGIT)))
			k |= K_PUNCT;
		if (c == 0)
			k |= K_ZERO;
		byte_kinds[c] = k;
	}
	class_kinds['a'] = K_ALPHA;
	class_kinds['c'] = K_CNTRL;
	class_kinds['d'] = K_DIGIT;
	class_kinds['g'] = K_GRAPH;
	class_kinds['l'] = K_LOWER;
	class_kinds['p'] = K_PUNCT;
	class_kinds['s'] = K_SPACE;
	class_kinds['u'] = K_UPPER;
	class_kinds['w'] = K_ALPHA | K_DIGIT;
	class_kinds['x'] = K_XDIGIT;
	class_kinds['z'] = K_ZERO;
	for (int cl = 0; cl < 256; cl++)
		if (class_kinds[cl])
			for (int c = 0; c < 256; c++)
				if (byte_kinds[c] & class_kinds[cl])
					byteset_add(&class_bytes[cl], c);
	for (const char *s = "^$*+?.([%-"; *s; s++)
		find_specials[(unsigned char)*s] = 1;
	done = 1;
}

/* ---- the matcher ----
 * A pattern is a NUL-terminated string and ends at its first NUL, as in
 * LuaJIT (Lua strings always carry one after their bytes); `%z` stands for
 * a zero byte. Malformed parts are reported only once the match reaches
 * them, as LuaJIT does: the same subject and pattern give the same error. */

/* Raises a pattern error. Out of line and marked as never returning, which
 * keeps the matcher's hot functions free of the error path's cost. */
__attribute__((noreturn, noinline, cold))
static void fail(struct matcher *m, const char *msg)
{
	luaL_error(m->L, "%s", msg);
	abort(); /* luaL_error does not return */
}

/* The matcher runs inside one of our C functions, whose first upvalue is
 * the env: the budget is looked up only when it is asked. */
static void refuel(struct matcher *m)
{
	const struct pattern_env *env = lua_touserdata(m->L, lua_upvalueindex(1));

	m->fuel = PATTERN_CHECK_STEPS;
	if (env->budget)
		env->budget(m->L);
}

static inline void spend(struct matcher *m, ptrdiff_t steps)
{
	m->fuel -= steps;
	if (m->fuel <= 0)
		refuel(m);
}

/* Whether byte c is in class letter cl (after '%'); upper case complements,
 * and a byte that names no class matches only itself (%. or %%). */
static inline int class_match(int c, int cl)
{
	/* Only 'A'-'Z' and 'a'-'z' reach a class letter through | 0x20. */
	uint16_t kinds = class_kinds[cl | 0x20];
	int in;

	if (!kinds)
		return c == cl;
	in = (byte_kinds[c] & kinds) != 0;
	return (cl & 0x20) ? in : !in;
}

/* Whether byte c is in the set from '[' at p to its closing ']' at end. */
static inline int set_match(int c, const char *p, const char *end)
{
	int in = 1;

	p++;
	if (*p == '^') {
		in = 0;
		p++;
	}
	while (p < end) {
		if (*p == '%') {
			/* set_end kept the escaped byte inside the set. */
			if (class_match(c, (unsigned char)p[1]))
				return in;
			p += 2;
		} else if (p[1] == '-' && p + 2 < end) {
			if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
				return in;
			p += 3;
		} else {
			if ((unsigned char)*p == c)
				return in;
			p++;
		}
	}
	return !in;
}

/* Where the one-character item at p ends: a byte, '.', a %class or a set.
 * A set's first member may be ']' and "%]" is a member too, so the set
 * closes at the first other ']'. */
static inline const char *item_end(struct matcher *m, const char *p)
{
	if (*p == '%') {
		if (p[1] == '\0')
			fail(m, "malformed pattern (ends with '%')");
		return p + 2;
	}
	if (*p == '[') {
		const char *first = p + 1 + (p[1] == '^');
		const char *q = first;

		for (;;) {
			if (*q == '\0')
				fail(m, "malformed pattern (missing ']')");
			if (*q == ']' && q > first)
				return q + 1;
			q += (*q == '%' && q[1] != '\0') ? 2 : 1;
		}
	}
	return p + 1;
}

/* Whether byte c matches the one-character item from p to ep. */
static inline int single_match(int c, const char *p, const char *ep)
{
	switch (*p) {
	case '.':
		return 1;
	case '%':
		return class_match(c, (unsigned char)p[1]);
	case '[':
		return set_match(c, p, ep - 1);
	default:
		return (unsigned char)*p == c;
	}
}

/* Adds what %cl accepts to b. */
static void byteset_add_class(struct byteset *b, int cl)
{
	const struct byteset *k = &class_bytes[cl | 0x20];

	if (!class_kinds[cl | 0x20]) {
		byteset_add(b, cl);
		return;
	}
	for (int i = 0; i < 4; i++)
		b->bits[i] |= (cl & 0x20) ? k->bits[i] : ~k->bits[i];
}

/* The bytes the one-character item from p to ep accepts: what single_match
 * says of each byte, in one table. */
static void item_bytes(const char *p, const char *ep, struct byteset *b)
{
	memset(b, 0, sizeof(*b));
	switch (*p) {
	case '.':
		memset(b, 0xff, sizeof(*b));
		break;
	case '%':
		byteset_add_class(b, (unsigned char)p[1]);
		break;
	case '[': {
		const char *end = ep - 1, *q = p + 1 + (p[1] == '^');

		while (q < end) {
			if (*q == '%') {
				byteset_add_class(b, (unsigned char)q[1]);
				q += 2;
			} else if (q[1] == '-' && q + 2 < end) {
				for (int c = (unsigned char)q[0]; c <= (unsigned char)q[2]; c++)
					byteset_add(b, c);
				q += 3;
			} else {
				byteset_add(b, (unsigned char)*q);
				q++;
			}
		}
		if (p[1] == '^')
			for (int i = 0; i < 4; i++)
				b->bits[i] = ~b->bits[i];
		break;
	}
	default:
		byteset_add(b, (unsigned char)*p);
		break;
	}
}

static const char *match_here(struct matcher *m, const char *s, const char *p);

/* `(` or `()`: opens capture `what` at s and matches the rest from p. */
static const char *begin_capture(struct matcher *m, const char *s, const char *p,
				 ptrdiff_t what)
{
	const char *r;

	if (m->level >= MAX_CAPTURES)
		fail(m, "too many captures");
	m->cap[m->level].start = s;
	m->cap[m->level].len = what;
	m->level++;
	r = match_here(m, s, p);
	if (!r)
		m->level--;
	return r;
}

/* `)`: closes the innermost open capture at s and matches the rest. */
static const char *end_capture(struct matcher *m, const char *s, const char *p)
{
	int i = m->level - 1;
	const char *r;

	while (i >= 0 && m->cap[i].len != CAP_OPEN)
		i--;
	if (i < 0)
		fail(m, "invalid pattern capture");
	m->cap[i].len = s - m->cap[i].start;
	r = match_here(m, s, p);
	if (!r)
		m->cap[i].len = CAP_OPEN;
	return r;
}

/* `%1`-`%9`: the text of a closed capture again. A position capture has
 * no text and never matches. */
static const char *match_backref(struct matcher *m, const char *s, int digit)
{
	int i = digit - '1';
	ptrdiff_t len;

	if (i < 0 || i >= m->level || m->cap[i].len == CAP_OPEN)
		fail(m, "invalid capture index");
	len = m->cap[i].len;
	if (len < 0 || m->src_end - s < len || memcmp(m->cap[i].start, s, (size_t)len) != 0)
		return NULL;
	spend(m, len);
	return s + len;
}

/* `%bxy` with p at x: from an x at s to the y that balances it. */
static const char *match_balance(struct matcher *m, const char *s, const char *p)
{
	int open, close;
	long nest = 1;
	const char *q;

	if (p[0] == '\0' || p[1] == '\0')
		fail(m, "unbalanced pattern");
	open = (unsigned char)p[0];
	close = (unsigned char)p[1];
	if (s >= m->src_end || (unsigned char)*s != open)
		return NULL;
	/* The closing byte is tested first: %b"" ends at the next quote. */
	for (q = s + 1; q < m->src_end; q++) {
		if ((unsigned char)*q == close) {
			if (--nest == 0)
				break;
		} else if ((unsigned char)*q == open) {
			nest++;
		}
	}
	spend(m, q - s);
	return q < m->src_end ? q + 1 : NULL;
}

/* `x*` and `x+` (from s + 1): the longest run first, then shorter ones. */
static const char *expand_greedy(struct matcher *m, const char *s, const char *p,
				 const char *ep)
{
	ptrdiff_t n = 0;
	const char *r;

	if (*p == '.') {
		n = m->src_end - s;
	} else {
		while (n < 8 && s + n < m->src_end && single_match((unsigned char)s[n], p, ep))
			n++;
		/* A long run: a table of the item's bytes costs less than
		 * reading the set again for every byte. */
		if (n == 8) {
			struct byteset b;

			item_bytes(p, ep, &b);
			while (s + n < m->src_end && byteset_has(&b, (unsigned char)s[n]))
				n++;
		}
	}
	spend(m, n);
	for (; n >= 0; n--)
		if ((r = match_here(m, s + n, ep + 1)))
			return r;
	return NULL;
}

/* `x-`: the shortest run first, one more byte at a time. */
static const char *expand_lazy(struct matcher *m, const char *s, const char *p,
			       const char *ep)
{
	const char *r;

	for (;;) {
		if ((r = match_here(m, s, ep + 1)))
			return r;
		if (s < m->src_end && single_match((unsigned char)*s, p, ep))
			s++;
		else
			return NULL;
	}
}

/* Matches pattern p at s: returns the end of the match or NULL. Items that
 * need no going back (a plain character, an anchor, %b, %f, a back
 * reference) loop here; the others recurse. */
static const char *match_here(struct matcher *m, const char *s, const char *p)
{
	const char *ep, *r;
	int hit;

	if (++m->depth > MAX_DEPTH)
		fail(m, "pattern too complex");
	for (;;) {
		spend(m, 1);
		switch (*p) {
		case '\0':
			goto out;
		case '(':
			if (p[1] == ')')
				s = begin_capture(m, s, p + 2, CAP_POSITION);
			else
				s = begin_capture(m, s, p + 1, CAP_OPEN);
			goto out;
		case ')':
			s = end_capture(m, s, p + 1);
			goto out;
		case '$':
			/* An anchor only as the pattern's last byte; else itself. */
			if (p[1] == '\0') {
				if (s != m->src_end)
					s = NULL;
				goto out;
			}
			break;
		case '%':
			if (p[1] == 'b') {
				if (!(s = match_balance(m, s, p + 2)))
					goto out;
				p += 4;
				continue;
			}
			if (p[1] == 'f') {
				const char *set = p + 2;
				int before, at;

				if (*set != '[')
					fail(m, "missing '[' after '%f' in pattern");
				ep = item_end(m, set);
				/* Outside the subject the byte is taken to be zero. */
				before = s > m->src ? (unsigned char)s[-1] : 0;
				at = s < m->src_end ? (unsigned char)*s : 0;
				if (set_match(before, set, ep - 1) || !set_match(at, set, ep - 1)) {
					s = NULL;
					goto out;
				}
				p = ep;
				continue;
			}
			if (p[1] >= '0' && p[1] <= '9') {
				if (!(s = match_backref(m, s, p[1])))
					goto out;
				p += 2;
				continue;
			}
			break;
		}
		ep = item_end(m, p);
		hit = s < m->src_end && single_match((unsigned char)*s, p, ep);
		switch (*ep) {
		case '?':
			if (hit && (r = match_here(m, s + 1, ep + 1))) {
				s = r;
				goto out;
			}
			p = ep + 1;
			continue;
		case '*':
			s = expand_greedy(m, s, p, ep);
			goto out;
		case '+':
			s = hit ? expand_greedy(m, s + 1, p, ep) : NULL;
			goto out;
		case '-':
			s = expand_lazy(m, s, p, ep);
			goto out;
		default:
			if (!hit) {
				s = NULL;
				goto out;
			}
			s++;
			p = ep;
			continue;
		}
	}
out:
	m->depth--;
	return s;
}

/* Call only once an attempt has been made at some position: the first
 * item's errors, if any, were raised then. */
static void first_item_init(struct matcher *m, struct first_item *f, const char *p)
{
	const char *ep;

	f->how = SCAN_NONE;
	switch (*p) {
	case '\0':
	case '(':
	case ')':
	case '.':
		return;
	case '$':
		if (p[1] == '\0')
			return;
		break;
	case '%':
		if (p[1] == 'b' || p[1] == 'f' || (p[1] >= '0' && p[1] <= '9'))
			return;
		break;
	}
	ep = item_end(m, p);
	if (*ep == '*' || *ep == '?' || *ep == '-')
		return;
	if (*p == '[' || (*p == '%' && class_kinds[(unsigned char)p[1] | 0x20] &&
			  p[1] != 'z')) {
		f->how = SCAN_SET;
		f->p = p;
		f->ep = ep;
		f->set_made = 0;
	} else {
		f->how = SCAN_BYTE;
		f->byte = *p == '%' ? (p[1] == 'z' ? 0 : (unsigned char)p[1]) : (unsigned char)*p;
	}
}

/* The first position at or after s where the first item fits, or NULL. */
static const char *first_item_scan(struct matcher *m, struct first_item *f, const char *s)
{
	const char *q = s;

	if (f->how == SCAN_BYTE) {
		q = memchr(s, f->byte, (size_t)(m->src_end - s));
	} else {
		/* A table of the item's bytes pays only over a long scan. */
		if (!f->set_made) {
			for (; q < m->src_end && q < s + 16; q++)
				if (single_match((unsigned char)*q, f->p, f->ep))
					goto out;
			item_bytes(f->p, f->ep, &f->set);
			f->set_made = 1;
		}
		for (; q < m->src_end; q++)
			if (byteset_has(&f->set, (unsigned char)*q))
				break;
out:
		if (q == m->src_end)
			q = NULL;
	}
	spend(m, (q ? q : m->src_end) - s);
	return q;
}

/* ---- the string functions ---- */

static void matcher_init(struct matcher *m, lua_State *L, const char *s, size_t len)
{
	m->L = L;
	m->src = s;
	m->src_end = s + len;
	m->fuel = PATTERN_CHECK_STEPS;
	m->depth = 0;
	m->level = 0;
}

/* Pushes capture i of the match s..e (the whole match when the pattern has
 * no captures and i is 0). */
static void push_capture(struct matcher *m, int i, const char *s, const char *e)
{
	ptrdiff_t len;

	if (i >= m->level) {
		if (i != 0)
			fail(m, "invalid capture index");
		lua_pushlstring(m->L, s, (size_t)(e - s));
		return;
	}
	len = m->cap[i].len;
	if (len == CAP_OPEN)
		fail(m, "unfinished capture");
	if (len == CAP_POSITION)
		lua_pushinteger(m->L, m->cap[i].start - m->src + 1);
	else
		lua_pushlstring(m->L, m->cap[i].start, (size_t)len);
}

/* Pushes every capture, or the whole match s..e when there are none and s
 * is not NULL; returns how many values. */
static int push_captures(struct matcher *m, const char *s, const char *e)
{
	int n = (m->level == 0 && s) ? 1 : m->level;

	/* A C function starts with LUA_MINSTACK (20) free slots, and none of
	 * ours has pushed more than two before its captures. */
	if (n > LUA_MINSTACK - 2)
		luaL_checkstack(m->L, n, "too many captures");
	for (int i = 0; i < n; i++)
		push_capture(m, i, s, e);
	return n;
}

/* find's and match's init, converted as LuaJIT converts it: toward zero,
 * and NaN or beyond 32 bits to INT32_MIN (what x86's conversion gives). */
static int32_t opt_init(lua_State *L, int idx)
{
	lua_Number n;

	if (lua_isnoneornil(L, idx))
		return 1;
	n = luaL_checknumber(L, idx);
	return n > -2147483649.0 && n < 2147483648.0 ? (int32_t)n : INT32_MIN;
}

/* Where matching begins for init (from 1, negative from the end): clamped
 * into 0..len, so an init past the end still tries at the end. */
static size_t start_offset(int32_t init, size_t len)
{
	long long at = init < 0 ? (long long)len + init : (long long)init - 1;

	if (at < 0)
		return 0;
	return (size_t)at > len ? len : (size_t)at;
}

/* The first place of p in s: memchr and memcmp for a short p (what a plain
 * find looks for), memmem beyond, which stays linear whatever p is. */
static const char *find_plain(const char *s, size_t ls, const char *p, size_t lp)
{
	const char *q, *last;

	if (lp == 0)
		return s;
	if (lp > ls)
		return NULL;
	if (lp > 32)
		return memmem(s, ls, p, lp);
	last = s + (ls - lp);
	for (q = s; (q = memchr(q, p[0], (size_t)(last - q) + 1)); q++) {
		if (memcmp(q + 1, p + 1, lp - 1) == 0)
			return q;
		if (q == last)
			break;
	}
	return NULL;
}

static int is_plain(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (find_specials[(unsigned char)p[i]])
			return 0;
	return 1;
}

static int find_or_match(lua_State *L, int find)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	int top = lua_gettop(L);
	size_t start = top >= 3 ? start_offset(opt_init(L, 3), ls) : 0;
	struct matcher m;
	struct first_item first = { .how = SCAN_NONE };
	const char *at, *e;
	int anchored, tries = 0;

	if (find && ((top >= 4 && lua_toboolean(L, 4)) || is_plain(p, lp))) {
		const char *hit = find_plain(s + start, ls - start, p, lp);

		if (!hit)
			goto none;
		lua_pushinteger(L, hit - s + 1);
		lua_pushinteger(L, (lua_Integer)(hit - s + lp));
		return 2;
	}
	matcher_init(&m, L, s, ls);
	anchored = *p == '^';
	p += anchored;
	at = s + start;
	for (;;) {
		m.level = 0;
		if ((e = match_here(&m, at, p)))
			break;
		if (anchored || at == m.src_end)
			goto none;
		if (++tries == SCAN_AFTER)
			first_item_init(&m, &first, p);
		at++;
		if (first.how != SCAN_NONE && !(at = first_item_scan(&m, &first, at)))
			goto none;
	}
	if (find) {
		lua_pushinteger(L, at - s + 1);
		lua_pushinteger(L, e - s);
		return push_captures(&m, NULL, NULL) + 2;
	}
	return push_captures(&m, at, e);
none:
	lua_pushnil(L);
	return 1;
}

/* string.find(s, pattern [, init [, plain]]) */
static int l_find(lua_State *L)
{
	return find_or_match(L, 1);
}

/* string.match(s, pattern [, init]) */
static int l_match(lua_State *L)
{
	return find_or_match(L, 0);
}

/* gmatch is Lua, for LuaJIT's JIT compiler: it specializes a trace to each
 * C closure a loop calls (LuaJIT's own iterator is exempt), so a new C
 * closure per gmatch would record a new trace on every loop. The iterators
 * are Lua closures of one function instead, calling gmatch_step with their
 * state; arguments that are not two strings go to gmatch_slow. Both calls
 * are tail calls, so errors name the caller's line and 'gmatch' as LuaJIT's
 * do. The chunk returns gmatch and a function that sets gmatch_slow. */
static const char gmatch_lua[] =
	"local step, new_state = ...\n"
	"local type, slow = type\n"
	"local function gmatch(...)\n"
	"	local s, p = ...\n"
	"	if type(s) ~= 'string' or type(p) ~= 'string' then\n"
	"		return slow(...)\n"
	"	end\n"
	"	local state = new_state()\n"
	"	return function() return step(s, p, state) end\n"
	"end\n"
	"return gmatch, function(f) slow = f end\n";

/* An iterator's own state (a userdata). */
struct gmatch_state {
	size_t at;        /* where the next match may begin */
	int first_known;  /* `first` is set: the pattern's first item */
	struct first_item first;
};

/* gmatch_step(s, pattern, state): the next match of an iterator; upvalue:
 * env. */
static int gmatch_step(lua_State *L)
{
	size_t ls;
	const char *s = lua_tolstring(L, 1, &ls);
	const char *p = lua_tostring(L, 2);
	struct gmatch_state *st = lua_touserdata(L, 3);
	size_t at = st->at;
	struct matcher m;
	const char *e;

	matcher_init(&m, L, s, ls);
	/* gmatch has no anchor: a leading '^' is a plain character. */
	while (at <= ls) {
		m.level = 0;
		if ((e = match_here(&m, s + at, p))) {
			/* After an empty match, the next one starts a byte further. */
			st->at = (size_t)(e - s) + (e == s + at);
			return push_captures(&m, s + at, e);
		}
		if (at == ls)
			break;
		if (!st->first_known) {
			first_item_init(&m, &st->first, p);
			st->first_known = 1;
		}
		at++;
		if (st->first.how != SCAN_NONE) {
			const char *q = first_item_scan(&m, &st->first, s + at);

			if (!q)
				break;
			at = (size_t)(q - s);
		}
	}
	st->at = ls + 1;
	return 0;
}

/* A new iterator's state. */
static int gmatch_new_state(lua_State *L)
{
	struct gmatch_state *st = lua_newuserdata(L, sizeof(*st));

	st->at = 0;
	st->first_known = 0;
	return 1;
}

/* gmatch(s, pattern) with arguments other than two strings: raises
 * LuaJIT's errors, or converts numbers and calls gmatch (upvalue) again. */
static int gmatch_slow(lua_State *L)
{
	luaL_checkstring(L, 1);
	luaL_checkstring(L, 2);
	lua_settop(L, 2);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, 2, 1);
	return 1;
}

/* gsub's replacement string for the match s..e: %0-%9 are captures, and
 * '%' before any other byte stands for that byte. */
static void add_template(struct matcher *m, luaL_Buffer *b, const char *r, size_t len,
			 const char *s, const char *e)
{
	const char *end = r + len, *pc;

	while ((pc = memchr(r, '%', (size_t)(end - r)))) {
		int c;

		luaL_addlstring(b, r, (size_t)(pc - r));
		if (pc + 1 == end) {
			/* LuaJIT reads the string's closing NUL there. */
			luaL_addchar(b, '\0');
			return;
		}
		c = (unsigned char)pc[1];
		if (c < '0' || c > '9') {
			luaL_addchar(b, c);
		} else if (c == '0') {
			luaL_addlstring(b, s, (size_t)(e - s));
		} else {
			push_capture(m, c - '1', s, e);
			luaL_addvalue(b);
		}
		r = pc + 2;
	}
	luaL_addlstring(b, r, (size_t)(end - r));
}

/* Adds the replacement of the match s..e: from the function or the table
 * at argument 3 (nil or false keep the match), or from the template. */
static void add_replacement(struct matcher *m, luaL_Buffer *b, int kind, const char *tpl,
			    size_t tpl_len, const char *s, const char *e)
{
	lua_State *L = m->L;

	if (kind == LUA_TFUNCTION) {
		int n;

		lua_pushvalue(L, 3);
		n = push_captures(m, s, e);
		lua_call(L, n, 1);
	} else if (kind == LUA_TTABLE) {
		push_capture(m, 0, s, e);
		lua_gettable(L, 3);
	} else {
		add_template(m, b, tpl, tpl_len, s, e);
		return;
	}
	if (!lua_toboolean(L, -1)) {
		lua_pop(L, 1);
		luaL_addlstring(b, s, (size_t)(e - s));
	} else if (!lua_isstring(L, -1)) {
		luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
	} else {
		luaL_addvalue(b);
	}
}

/* string.gsub(s, pattern, repl [, n]) */
static int l_gsub(lua_State *L)
{
	size_t ls, lp, tpl_len = 0;
	const char *src = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	int kind = lua_type(L, 3);
	/* As LuaJIT: through a 64-bit integer, then int. */
	int max = (int)luaL_optinteger(L, 4, (lua_Integer)ls + 1);
	const char *tpl = NULL, *at = src, *e;
	struct matcher m;
	struct first_item first = { .how = SCAN_NONE };
	int anchored, tries = 0, n = 0;
	luaL_Buffer b;

	luaL_argcheck(L, kind == LUA_TNUMBER || kind == LUA_TSTRING ||
		      kind == LUA_TFUNCTION || kind == LUA_TTABLE, 3,
		      "string/function/table expected");
	if (kind == LUA_TNUMBER || kind == LUA_TSTRING)
		tpl = lua_tolstring(L, 3, &tpl_len);
	luaL_buffinit(L, &b);
	matcher_init(&m, L, src, ls);
	anchored = *p == '^';
	p += anchored;
	while (n < max) {
		m.level = 0;
		e = match_here(&m, at, p);
		if (e) {
			n++;
			add_replacement(&m, &b, kind, tpl, tpl_len, at, e);
		}
		if (e && e > at) {
			at = e;
		} else if (at < m.src_end) {
			luaL_addchar(&b, *at++);
		} else {
			break;
		}
		if (anchored)
			break;
		if (!e && ++tries == SCAN_AFTER)
			first_item_init(&m, &first, p);
		if (!e && first.how != SCAN_NONE) {
			/* No match before q: copy up to it, or to the end. */
			const char *q = first_item_scan(&m, &first, at);

			if (!q)
				break;
			luaL_addlstring(&b, at, (size_t)(q - at));
			at = q;
		}
	}
	luaL_addlstring(&b, at, (size_t)(m.src_end - at));
	luaL_pushresult(&b);
	lua_pushinteger(L, n);
	return 2;
}

void pattern_register(lua_State *L, pattern_budget_fn budget)
{
	static const luaL_Reg functions[] = {
		{ "find", l_find },
		{ "match", l_match },
		{ "gsub", l_gsub },
		{ NULL, NULL },
	};
	struct pattern_env *env;

	tables_init();
	env = lua_newuserdata(L, sizeof(*env));
	env->budget = budget;
	for (const luaL_Reg *f = functions; f->name; f++) {
		lua_pushvalue(L, -1);
		lua_pushcclosure(L, f->func, 1);
		lua_setfield(L, -3, f->name);
	}
	/* gmatch: Lua with three C helpers (see gmatch_lua). */
	if (luaL_loadbuffer(L, gmatch_lua, sizeof(gmatch_lua) - 1, "=[pattern]") != 0)
		lua_error(L); /* cannot happen: the chunk is ours */
	lua_pushvalue(L, -2);
	lua_pushcclosure(L, gmatch_step, 1);
	lua_pushcfunction(L, gmatch_new_state);
	lua_call(L, 2, 2);
	lua_pushvalue(L, -2);
	lua_pushcclosure(L, gmatch_slow, 1);
	lua_call(L, 1, 0);
	lua_remove(L, -2);
	lua_setfield(L, -2, "gmatch");
}
