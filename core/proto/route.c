/* route.c - which protocol serves what comes to the port, by its path:
 * /socket.io/ is Engine.IO (polling requests here, the WebSocket transport
 * and its probe through ws.c), a namespace's path is its plain WebSocket
 * endpoint, /api/ the HTTP API, and /healthz and /metrics are answered
 * here. The app hands route_http to net/http.c and route_ws_check/open to
 * ws.c (in its struct ws_handler). */
#include "proto/route.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/settings.h"
#include "hub/client.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/ws.h"
#include "proto/api.h"
#include "proto/engine.h"
#include "proto/plain.h"
#include "wire/json.h"
#include "wire/websocket.h"

/* When the server started, for /healthz. */
static int64_t started_ms;

/* Where an upgrade goes (struct ws_route's kind): a new Engine.IO session,
 * the probe of a polling one (target: the connection), the plain endpoint
 * of a namespace (target: the namespace), or nowhere: a session that has
 * its WebSocket already (target: the connection; closed once open). */
enum { ROUTE_ENGINE, ROUTE_PROBE, ROUTE_PLAIN, ROUTE_STALE };

/* Whether the store serves (route_set_store_check), or NULL. */
static int (*store_down)(const char **why);

/* Whether the node serves only its own sockets (route_set_degraded_check),
 * or NULL. */
static int (*degraded)(const char **why);

void route_set_degraded_check(int (*check)(const char **why))
{
	degraded = check;
}

void route_init(void)
{
	started_ms = now_ms();
}

void route_set_store_check(int (*down)(const char **why))
{
	store_down = down;
}

static int is_engine_path(const char *path)
{
	return strcmp(path, "/socket.io/") == 0 || strcmp(path, "/socket.io") == 0;
}

/* /healthz, /metrics, and a 404 for the rest. */
static int serve_own(struct lws *wsi, struct pss *pss, const char *path)
{
	if (strcmp(path, "/healthz") == 0 && life.draining) {
		/* A load balancer on a kept-alive connection learns to look elsewhere. */
		static const char going[] = "{\"status\":\"shutting down\"}";
		return http_respond(wsi, pss, 503, "application/json", going, sizeof(going) - 1);
	}
	if (strcmp(path, "/healthz") == 0 && store_down) {
		/* A load balancer sends no one to a node whose store is gone;
		 * the reason is the operator's. */
		const char *why = NULL;
		if (store_down(&why)) {
			static const char head[] = "{\"status\":\"unavailable\",\"reason\":";
			size_t len = strnlen(why, 256), n = sizeof(head) - 1;
			char body[sizeof(head) + json_escaped_max(256) + 2];
			memcpy(body, head, n);
			n += json_escape(why, len, body + n);
			body[n++] = '}';
			metrics_http_error(503);
			return http_respond(wsi, pss, 503, "application/json", body, n);
		}
	}
	if (strcmp(path, "/healthz") == 0) {
		char body[128 + json_escaped_max(256)];
		const char *why = NULL;
		int n = snprintf(body, sizeof(body), "{\"status\":\"%s\",\"uptimeMs\":%lld,\"sockets\":%llu",
				 degraded && degraded(&why) ? "degraded" : "ok",
				 (long long)(now_ms() - started_ms),
				 (unsigned long long)client_count());
		/* Cluster mode without Redis: the node still serves its own
		 * sockets (200), and says what it cannot do and why. */
		if (why) {
			memcpy(body + n, ",\"reason\":", 10);
			n += 10;
			n += (int)json_escape(why, strnlen(why, 256), body + n);
		}
		body[n++] = '}';
		return http_respond(wsi, pss, 200, "application/json", body, (size_t)n);
	}
	/* With PARLEY_METRICS_ADDR, /metrics is there only (core/net/scrape.c). */
	if (strcmp(path, "/metrics") == 0 && !settings.metrics_addr) {
		size_t len;
		char *text = metrics_render(&len);
		int rc = http_respond(wsi, pss, 200, "text/plain; version=0.0.4", text, len);
		free(text);
		return rc;
	}
	metrics_http_error(404);
	static const char nf[] = "{\"status\":\"error\",\"statusCode\":404,\"message\":\"not found\"}";
	return http_respond(wsi, pss, 404, "application/json", nf, sizeof(nf) - 1);
}

int route_http(struct lws *wsi, struct pss *pss, const char *path)
{
	if (is_engine_path(path))
		return engine_http_request(wsi, pss);
	if (strncmp(path, "/api/", 5) == 0)
		return api_request_begin(wsi, pss, path);
	return serve_own(wsi, pss, path);
}

int route_ws_check(const struct http_head *h, struct ws_route *route, int *status,
		   const char **why)
{
	const struct http_field *origin = http_head_field(h, "origin");
	char path[256], buf[64], o[256];
	const char *v;

	if (origin && origin->value_len) {
		if (origin->value_len >= sizeof(o))
			goto bad;
		memcpy(o, origin->value, origin->value_len);
		o[origin->value_len] = '\0';
		if (!http_origin_allowed(o)) {
			*why = "origin not allowed";
			*status = 403;
			return PARLEY_EREFUSED;
		}
	}
	if (life.draining) {
		*why = "server shutting down";
		*status = 503;
		return PARLEY_EREFUSED;
	}
	if (http_head_path(h, path, sizeof(path)) < 0)
		goto bad;
	if (is_engine_path(path)) {
		v = http_head_query_arg(h, "EIO", buf, sizeof(buf));
		if (!v || strcmp(v, "4") != 0)
			goto bad;
		v = http_head_query_arg(h, "transport", buf, sizeof(buf));
		if (!v || strcmp(v, "websocket") != 0)
			goto bad;
		v = http_head_query_arg(h, "sid", buf, sizeof(buf));
		route->kind = ROUTE_ENGINE;
		route->target = NULL;
		if (v) {
			struct conn *c = engine_session(v);
			if (!c)
				goto bad;
			/* A second upgrade of a session that has upgraded, or is
			 * probing: accepted, then closed (route_ws_open), as
			 * engine.io does; the session goes on on its own
			 * transport. A 400 here would make a Node client throw
			 * on the unexpected response. */
			route->kind = c->transport != TRANSPORT_POLLING || c->probe ? ROUTE_STALE :
										       ROUTE_PROBE;
			route->target = c;
		}
		return 0;
	}
	if (path[0] == '/' && path[1] && (route->target = nsp_lookup(path, strlen(path)))) {
		route->kind = ROUTE_PLAIN;
		return 0;
	}
	*why = "not found";
	*status = 404;
	return PARLEY_EREFUSED;
bad:
	*why = "bad request";
	*status = 400;
	return PARLEY_EREFUSED;
}

void route_ws_open(struct ws *w, const struct http_head *h, const struct ws_route *route,
		   const char *addr)
{
	struct handshake hs = { 0 };

	if (route->kind == ROUTE_PROBE) {
		engine_probe_open(route->target, w);
		return;
	}
	if (route->kind == ROUTE_STALE) {
		metrics_protocol_error("duplicate_upgrade");
		log_info("%s: a WebSocket upgrade of a session that has one already (from %s): "
			 "closed", ((struct conn *)route->target)->sid, addr);
		ws_close(w, WS_POLICY_VIOLATION, "transport already upgraded");
		return;
	}
	http_handshake_from_head(&hs, h, addr);
	if (route->kind == ROUTE_PLAIN)
		plain_ws_open(w, &hs, route->target);
	else
		engine_ws_open(w, &hs);
}
