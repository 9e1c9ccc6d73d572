/* kv.c - plugins' key-value storage (core.kv_*, which parley.kv builds
 * on), in the store's "kv" database: plugin "\0" key -> expiry ms(8, 0:
 * none) then the value's JSON. Expired entries read as absent and are swept
 * away a slice at a time. */
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/alloc.h"
#include "base/error.h"
#include "lua/host.h"
#include "lua/jsonlua.h"
#include "base/scratch.h"
#include "base/clock.h"
#include "store/store.h"

/* A plugin's key-value keys (after its name) and values. */
/* How often expired key-value entries are swept, and how many are looked
 * at per sweep. */
#define KV_SWEEP_MS 30000
#define KV_SWEEP_BATCH 2000

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Builds "namespace \0 key" into `out`; returns its length, or 0 (with an
 * error message pushed) when the key is unusable. */
static size_t kv_key(lua_State *S, char *out)
{
	size_t nlen, klen;
	const char *key;
	const char *ns = store_kv_args(S, &nlen, &key, &klen);

	if (!ns)
		return 0;
	memcpy(out, ns, nlen);
	out[nlen] = '\0';
	memcpy(out + nlen + 1, key, klen);
	return nlen + 1 + klen;
}

/* kv_get(ns, key) -> value json, expiry ms (0: none) | nil */
static int l_kv_get(lua_State *S)
{
	char key[KV_NS_MAX + 1 + KV_KEY_MAX];
	size_t klen = kv_key(S, key), vlen;
	const void *val;
	int rc;

	if (!klen)
		return 2;
	rc = store_get(STORE_KV, key, klen, &val, &vlen);
	if (rc < 0) {
		lua_pushnil(S);
		lua_pushstring(S, parley_strerror(rc));
		return 2;
	}
	if (rc == 0 || vlen < 8)
		return 0;
	uint64_t expiry = get_u64(val);
	if (expiry && (int64_t)expiry <= wall_ms())
		return 0;
	lua_pushlstring(S, (const char *)val + 8, vlen - 8);
	lua_pushnumber(S, (lua_Number)expiry);
	return 2;
}

/* kv_set(ns, key, json, expiry ms or 0) -> true | nil, err */
static int l_kv_set(lua_State *S)
{
	char key[KV_NS_MAX + 1 + KV_KEY_MAX];
	size_t klen = kv_key(S, key), vlen;
	const char *v = luaL_checklstring(S, 3, &vlen);
	lua_Number expiry = luaL_optnumber(S, 4, 0);

	if (!klen)
		return 2;
	if (vlen > KV_VALUE_MAX) {
		lua_pushnil(S);
		lua_pushliteral(S, "values are at most 1 MiB");
		return 2;
	}
	unsigned char *buf = xmalloc(8 + vlen);
	put_u64(buf, expiry > 0 ? (uint64_t)expiry : 0);
	memcpy(buf + 8, v, vlen);
	struct store_batch *b = store_batch_new();
	store_put(b, STORE_KV, key, klen, buf, 8 + vlen);
	store_submit(b, NULL, NULL);
	free(buf);
	lua_pushboolean(S, 1);
	return 1;
}

/* kv_delete(ns, key) -> true | nil, err */
static int l_kv_delete(lua_State *S)
{
	char key[KV_NS_MAX + 1 + KV_KEY_MAX];
	size_t klen = kv_key(S, key);

	if (!klen)
		return 2;
	struct store_batch *b = store_batch_new();
	store_del(b, STORE_KV, key, klen);
	store_submit(b, NULL, NULL);
	lua_pushboolean(S, 1);
	return 1;
}

/* The keys a scan found, gathered in scratch memory and pushed once the
 * scan is over: a push may raise (the memory budget), and must not unwind
 * through the store's cursor. Each key is its length (a size_t) then its
 * bytes. */
struct kv_keys {
	char *buf;
	size_t len, cap;
	size_t skip; /* the namespace and its NUL */
	int64_t now;
};

static int collect_key(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct kv_keys *c = arg;
	size_t n = kl - c->skip;

	if (vl >= 8) {
		uint64_t expiry = get_u64(v);
		if (expiry && (int64_t)expiry <= c->now)
			return 0;
	}
	if (c->len + sizeof(n) + n > c->cap) {
		c->cap = (c->len + sizeof(n) + n) * 2;
		c->buf = scratch_realloc(c->buf, c->cap);
	}
	memcpy(c->buf + c->len, &n, sizeof(n));
	memcpy(c->buf + c->len + sizeof(n), (const char *)k + c->skip, n);
	c->len += sizeof(n) + n;
	return 0;
}

/* kv_keys(ns, prefix, limit) -> { keys } (committed ones, in order) */
static int l_kv_keys(lua_State *S)
{
	size_t nlen, plen;
	const char *ns = luaL_checklstring(S, 1, &nlen);
	const char *prefix = luaL_optlstring(S, 2, "", &plen);
	lua_Integer limit = luaL_optinteger(S, 3, 1000);
	char key[KV_NS_MAX + 1 + KV_KEY_MAX];
	struct kv_keys c = { NULL, 0, 0, nlen + 1, wall_ms() };
	int count = 0;

	if (nlen > KV_NS_MAX || plen > KV_KEY_MAX)
		return luaL_error(S, "kv: prefix too long");
	memcpy(key, ns, nlen);
	key[nlen] = '\0';
	memcpy(key + nlen + 1, prefix, plen);
	store_scan(STORE_KV, key, nlen + 1 + plen, NULL, 0, limit < 1 ? 1 : limit, collect_key,
		   &c);
	lua_newtable(S);
	jsonlua_mark_array(S);
	for (size_t at = 0; at < c.len;) {
		size_t n;
		memcpy(&n, c.buf + at, sizeof(n));
		lua_pushlstring(S, c.buf + at + sizeof(n), n);
		lua_rawseti(S, -2, ++count);
		at += sizeof(n) + n;
	}
	scratch_free(c.buf);
	return 1;
}


/* Deletes expired key-value entries, a slice of the database at a time. */
static char sweep_from[KV_NS_MAX + 1 + KV_KEY_MAX];
static size_t sweep_from_len;
static ev_timer sweep_timer;

struct sweep {
	struct store_batch *b;
	int64_t now;
	int expired;
};

static int sweep_one(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct sweep *w = arg;

	if (vl >= 8) {
		uint64_t expiry = get_u64(v);
		if (expiry && (int64_t)expiry <= w->now) {
			store_del(w->b, STORE_KV, k, kl);
			w->expired++;
		}
	}
	if (kl <= sizeof(sweep_from)) {
		memcpy(sweep_from, k, kl);
		sweep_from_len = kl;
	}
	return 0;
}

static void on_sweep(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct sweep w = { store_batch_new(), wall_ms(), 0 };
	long n;

	(void)loop;
	(void)revents;
	n = store_scan(STORE_KV, "", 0, sweep_from_len ? sweep_from : NULL, sweep_from_len,
		       KV_SWEEP_BATCH, sweep_one, &w);
	if (n < KV_SWEEP_BATCH)
		sweep_from_len = 0; /* the end: the next sweep starts over */
	if (w.expired)
		store_submit(w.b, NULL, NULL);
	else
		store_batch_free(w.b);
	timer_start(t, on_sweep, KV_SWEEP_MS);
}

static const luaL_Reg functions[] = {
	{ "kv_get", l_kv_get },
	{ "kv_set", l_kv_set },
	{ "kv_delete", l_kv_delete },
	{ "kv_keys", l_kv_keys },
	{ NULL, NULL },
};

void kv_register(lua_State *S)
{
	luaL_register(S, NULL, functions);
}

void kv_start(void)
{
	timer_start(&sweep_timer, on_sweep, KV_SWEEP_MS);
}

void kv_fini(void)
{
	timer_stop(&sweep_timer);
}
