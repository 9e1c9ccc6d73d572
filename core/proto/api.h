/* api.h - the HTTP API gateway under /api/: the key check, the JSON body,
 * and the hand-over to the Lua routes, whose answer may come later (the
 * request is parked until then). Errors are negative codes (base/error.h);
 * what a function returns "for the lws callback" is lws's contract. */
#ifndef PARLEY_API_H
#define PARLEY_API_H

#include <stddef.h>

#include "net/http.h"

struct api_request;

/* What serves the requests: the Lua routes, which the seam sets at start. */
struct api_hooks {
	/* A request, answered through api_respond under `id`, now or later.
	 * `query` is its handshake (query, Authorization, address); `body` is
	 * NULL when there is none. All of them are api.c's, valid during the
	 * call: copy what is kept. */
	void (*on_request)(const char *id, const char *method, const char *path,
			   const struct handshake *query, const char *body, size_t body_len);
};
/* Sets the hooks (NULL: none, and a request is answered 503; `h` must
 * outlive them). */
void api_set_hooks(const struct api_hooks *h);

/* Makes the map of parked requests. */
void api_init(void);
/* Frees the requests still parked (their connections are gone). */
void api_fini(void);
/* Starts a request: checks the key, then waits for the body or hands it to
 * the Lua routes; the answer is written once there. Refusals (no key, the
 * drain, a body that is not JSON) are answered here. Returns what the lws
 * callback should. */
int api_request_begin(struct lws *wsi, struct pss *pss, const char *path);
/* Lua's answer to request `id`: `status` and `body` (JSON, copied), written
 * once the connection can take it. Returns 0; -ENOENT when the request is
 * gone (its client left), -EALREADY when it was answered. */
int api_respond(const char *id, int status, const char *body, size_t len);
/* Requests handed to Lua and not answered yet. */
size_t api_pending(void);

#endif
