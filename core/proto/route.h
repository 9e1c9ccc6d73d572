/* route.h - which protocol serves what comes to the port, by its path:
 * Engine.IO under /socket.io/, the plain WebSocket endpoint at a
 * namespace's path, the HTTP API under /api/, /healthz and /metrics. */
#ifndef PARLEY_ROUTE_H
#define PARLEY_ROUTE_H

#include "net/http.h"
#include "net/ws.h"

struct http_head;

/* Notes the start time (/healthz's uptime). */
void route_init(void);
/* What /healthz asks of the store (the app sets it: the store is a layer
 * this one does not link): 0 when it serves, else 1 with `*why` (static
 * text), answered as a 503 with the reason. NULL: the store is not asked. */
void route_set_store_check(int (*down)(const char **why));
/* What /healthz asks of cluster mode (the app sets it): 0 when it serves,
 * else 1 with `*why` (the module's text): the node serves its own sockets,
 * so the answer stays 200, saying "degraded" and why. NULL: not asked. */
void route_set_degraded_check(int (*degraded)(const char **why));
/* An HTTP request whose framing passed (net/http.c's on_request): answers
 * it, or hands it to the route that will. Returns what the lws callback
 * should. */
int route_http(struct lws *wsi, struct pss *pss, const char *path);
/* An upgrade request (ws.c's check): the origin, the drain, the path and
 * the Engine.IO query decide. 0 with `route` filled, or PARLEY_EREFUSED
 * with `*status` the HTTP status refusing it (403, 503, 404, 400) and
 * `*why` its body (a static string). */
int route_ws_check(const struct http_head *h, struct ws_route *route, int *status,
		   const char **why);
/* A WebSocket is open on a request route_ws_check routed (ws.c's open, in
 * the same callback): a new Engine.IO session or plain connection, or the
 * probe of a polling session. */
void route_ws_open(struct ws *w, const struct http_head *h, const struct ws_route *route,
		   const char *addr);

#endif
