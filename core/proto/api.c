/* api.c - the HTTP API gateway under /api/: the key check, the JSON body,
 * and the hand-over to the Lua routes (api_hooks), whose answer may come
 * later (a route can wait for the store): the request is parked and answered
 * from its writable callback. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "proto/api.h"

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/map.h"
#include "base/metrics.h"
#include "base/settings.h"
#include "net/http.h"
#include "wire/json.h"

/* A request Lua has not answered yet. */
struct api_request {
	uint64_t id;
	char key[24]; /* the id as text: the key in `requests` */
	struct lws *wsi;
	enum http_method method;
	char *path;
	struct handshake query;
	int has_body;
	int ready;  /* Lua answered: status and body below */
	int status;
	char *resp;
	size_t resp_len;
	int64_t started_ms; /* for the access log */
};

static struct map requests; /* id text -> struct api_request */
static uint64_t next_request;
static const struct api_hooks *hooks;

static int body_done(struct lws *wsi, struct pss *pss);
static int writable(struct lws *wsi, struct pss *pss);
static void release(struct pss *pss);

/* A request, maybe waiting for its body or for Lua's answer. */
static const struct http_route api_route = {
	.body_done = body_done,
	.writable = writable,
	.release = release,
};

void api_set_hooks(const struct api_hooks *h)
{
	hooks = h;
}

static void request_free(struct api_request *r)
{
	if (!r)
		return;
	map_del(&requests, r->key, strlen(r->key));
	free(r->path);
	http_handshake_fini(&r->query);
	free(r->resp);
	free(r);
}

/* An error answered at once, before Lua sees the request. */
static int api_error(struct lws *wsi, struct pss *pss, int status, const char *message)
{
	char body[256];
	int n = snprintf(body, sizeof(body),
			 "{\"status\":\"error\",\"statusCode\":%d,\"message\":\"%s\"}", status,
			 message);

	metrics_http_error(status);
	request_free(pss->route_data);
	pss->route_data = NULL;
	return http_respond(wsi, pss, status, "application/json", body, (size_t)n);
}

/* Whether the request carries the API key as a bearer token. */
static int key_ok(struct lws *wsi)
{
	char auth[512];
	const char *key = settings.api_key;
	size_t klen = strlen(key);
	int len = lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION);

	if (len < 7 || strncasecmp(auth, "Bearer ", 7) != 0)
		return 0;
	const char *given = auth + 7;
	size_t glen = (size_t)len - 7;
	while (glen && given[glen - 1] == ' ')
		glen--;
	return glen == klen && CRYPTO_memcmp(given, key, klen) == 0;
}

static int json_content_type(struct lws *wsi)
{
	char ct[128];
	int n = lws_hdr_copy(wsi, ct, sizeof(ct), WSI_TOKEN_HTTP_CONTENT_TYPE);

	return n >= 16 && strncasecmp(ct, "application/json", 16) == 0 &&
	       (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

static int dispatch(struct lws *wsi, struct pss *pss)
{
	struct api_request *r = pss->route_data;

	if (pss->body_too_large) {
		metrics_limit("max_payload");
		log_info("HTTP API %s %s from %s: a body over %zu bytes (PARLEY_MAX_PAYLOAD): 413",
			 http_method_name(r->method), r->path, r->query.addr, settings.max_payload);
		return api_error(wsi, pss, 413, "the body is larger than PARLEY_MAX_PAYLOAD");
	}
	/* Parked until Lua answers: lws would drop it after its timeout. */
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	if (!hooks || !hooks->on_request) {
		static const char none[] =
			"{\"status\":\"error\",\"statusCode\":503,\"message\":\"no routes\"}";
		api_respond(r->key, 503, none, sizeof(none) - 1);
		return 0;
	}
	hooks->on_request(r->key, http_method_name(r->method), r->path, &r->query,
			  r->has_body ? pss->body : NULL, r->has_body ? pss->body_len : 0);
	return 0;
}

int api_request_begin(struct lws *wsi, struct pss *pss, const char *path)
{
	struct api_request *r;
	/* How the body is framed was checked before any route (net/http.c's
	 * check_framing): a plain Content-Length, or none on a method
	 * without a body. */
	long long length = http_content_length(wsi);

	if (!settings.api_key)
		return api_error(wsi, pss, 403, "the HTTP API is off: set PARLEY_API_KEY");
	if (!key_ok(wsi)) {
		char addr[64];
		lws_get_peer_simple(wsi, addr, sizeof(addr));
		metrics_protocol_error("api_bad_key");
		log_info("HTTP API %s %s from %s refused (401): no valid key", http_method_name(pss->method),
			 path, addr);
		return api_error(wsi, pss, 401, "a valid API key is required (Authorization: Bearer)");
	}
	/* Shutting down: what was asked before is answered, nothing new starts. */
	if (life.draining)
		return api_error(wsi, pss, 503, "the server is shutting down");
	/* A body is JSON or nothing. */
	if (length > 0 && !json_content_type(wsi))
		return api_error(wsi, pss, 415, "the body must be application/json");
	/* The path and the query reach the routes as strings, and come back in
	 * their answers (JSON: UTF-8 only); ids and names are text. */
	r = xcalloc(1, sizeof(*r));
	http_handshake_copy(&r->query, wsi);
	if (!json_utf8_valid(path, strlen(path)) ||
	    !json_utf8_valid(r->query.query ? r->query.query : "", r->query.query_len)) {
		http_handshake_fini(&r->query);
		free(r);
		return api_error(wsi, pss, 400, "the path and the query must be valid UTF-8");
	}
	r->id = ++next_request;
	snprintf(r->key, sizeof(r->key), "%llu", (unsigned long long)r->id);
	r->wsi = wsi;
	r->method = pss->method;
	r->path = xstrdup(path);
	r->started_ms = now_ms();
	map_put(&requests, r->key, strlen(r->key), r);
	pss->route_data = r;
	pss->route = &api_route;
	if (length > 0) {
		/* The body comes in HTTP_BODY callbacks; dispatched at the end,
		 * whatever the method (dispatching now as well would run the route
		 * twice). */
		r->has_body = 1;
		return 0;
	}
	return dispatch(wsi, pss);
}

static int body_done(struct lws *wsi, struct pss *pss)
{
	struct api_request *r = pss->route_data;

	/* Without a body the request was dispatched at its headers already
	 * (and may be answered and gone). */
	if (!r || !r->has_body)
		return 0;
	return dispatch(wsi, pss);
}

int api_respond(const char *id, int status, const char *body, size_t len)
{
	struct api_request *r = map_get(&requests, id, strlen(id));

	if (!r)
		return -ENOENT;
	if (r->ready)
		return -EALREADY;
	r->ready = 1;
	r->status = status;
	r->resp = xmalloc(len ? len : 1);
	memcpy(r->resp, body, len);
	r->resp_len = len;
	lws_callback_on_writable(r->wsi);
	return 0;
}

static int writable(struct lws *wsi, struct pss *pss)
{
	struct api_request *r = pss->route_data;
	int rc;

	if (!r || !r->ready)
		return 0;
	if (r->status >= 400)
		metrics_http_error(r->status);
	/* The access log: one line per answered request (the path is UTF-8,
	 * checked at the door; the query is left out: it may carry tokens). */
	log_info("api: %s %s %d %zu bytes %lld ms from %s", http_method_name(r->method), r->path,
		 r->status, r->resp_len, (long long)(now_ms() - r->started_ms), r->query.addr);
	pss->route_data = NULL;
	rc = http_respond(wsi, pss, r->status, "application/json", r->resp, r->resp_len);
	request_free(r);
	return rc;
}

size_t api_pending(void)
{
	return requests.count;
}

void api_init(void)
{
	map_init(&requests);
}

void api_fini(void)
{
	struct map_iter it;
	struct map_entry *e;

	map_iter_init(&it, &requests);
	while ((e = map_next(&it))) {
		struct api_request *r = e->value;
		free(r->path);
		http_handshake_fini(&r->query);
		free(r->resp);
		free(r);
	}
	map_fini(&requests);
}

static void release(struct pss *pss)
{
	/* Over before Lua answered (the client left): the answer will find
	 * nothing. */
	request_free(pss->route_data);
	pss->route_data = NULL;
}
