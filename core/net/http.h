/* http.h - the HTTP half of the lws protocol handler: per-request state,
 * responses with CORS, and the routes that are not Engine.IO. */
#ifndef PARLEY_HTTP_H
#define PARLEY_HTTP_H

#include <stddef.h>

#include <libwebsockets.h>

#include "base/frame.h"

/* base/ knows nothing of lws: here, where lws is used, the frames' headroom
 * is held to be enough for lws_write (see FRAME_HEADROOM). */
_Static_assert(FRAME_HEADROOM >= LWS_PRE, "a frame's headroom is smaller than LWS_PRE");

struct conn;

enum http_method { HTTP_OTHER, HTTP_GET, HTTP_POST, HTTP_OPTIONS, HTTP_PUT,
		   HTTP_PATCH, HTTP_DELETE, HTTP_HEAD };

enum pss_role {
	ROLE_NONE,
	ROLE_POLL_GET,  /* a long-poll GET, parked until there is something */
	ROLE_POLL_POST, /* a POST of Engine.IO packets */
	ROLE_API,       /* a request to the HTTP API, maybe waiting for Lua */
};

/* Per-connection state lws keeps for us; reused across keep-alive requests,
 * so everything about one request is reset when the next begins. */
struct pss {
	struct conn *conn;
	enum pss_role role;
	enum http_method method;
	char *body;
	size_t body_len;
	size_t body_cap;
	int body_too_large;
	int body_seen; /* a piece of the body came (HTTP_BODY) */
	int dead_poll; /* the poll's session closed: answer with a close packet */
	int close_after; /* answer with "connection: close" and close: what
			  * follows on the connection cannot be told from a
			  * request (a body not read, a length not clear) */
	char *origin; /* the request's Origin header, or NULL */
	struct api_request *api; /* an HTTP API request in progress */
};

enum http_method http_method(struct lws *wsi);
/* "GET", "POST", ...; "OTHER" for the rest. */
const char *http_method_name(enum http_method m);
/* The request's Content-Length: its value, -1 when there is none, -2 when
 * it is not one decimal number (repeated, a list, a sign, junk, overflow). */
long long http_content_length(struct lws *wsi);
/* Frees what the current request allocated in the pss (body, origin). */
void http_release(struct pss *pss);
/* Copies the Origin header into pss->origin (NULL when absent). */
void http_read_origin(struct lws *wsi, struct pss *pss);
/* The value of query argument `name` ("sid=": keep the '='), copied into
 * `out`; NULL when absent or longer than outlen - 1. */
const char *http_query_arg(struct lws *wsi, const char *name, char *out, size_t outlen);
/* The request's header table holds at most this much (max_http_header_data). */
#define LWS_QUERY_FRAGMENT_MAX 4096
/* Whether FRONTEND_URL allows this Origin (always, when unset). */
int http_origin_allowed(const char *origin);
/* Writes a whole response, with CORS headers for an allowed origin, and
 * finishes the transaction. Returns what the lws callback should return. */
int http_respond(struct lws *wsi, struct pss *pss, int status,
		 const char *content_type, const char *body, size_t len);
/* The Engine.IO error body {"code":N,"message":"..."} with status 400. */
int http_engine_error(struct lws *wsi, struct pss *pss, int code, const char *msg);

struct handshake;
/* Copies the query, Authorization and peer address of the request
 * (they are gone once its callback returns). */
void http_handshake_copy(struct handshake *hs, struct lws *wsi);
/* Frees what http_handshake_copy allocated. */
void http_handshake_fini(struct handshake *hs);

/* engine.c's HTTP side */
/* ---- api.c: the HTTP API under /api/ ---- */
struct api_request;
void api_init(void);
void api_fini(void);
/* Starts a request: checks the key, then waits for the body or hands it to
 * the Lua routes. Returns what the lws callback should. */
int api_request_begin(struct lws *wsi, struct pss *pss, const char *path);
int api_body_done(struct lws *wsi, struct pss *pss);
/* Writes Lua's answer once it is there. */
int api_writable(struct lws *wsi, struct pss *pss);
/* The connection closed: the request is forgotten. */
void api_closed(struct pss *pss);
/* Lua's answer to request `id`; 0, or -1 when it is gone or answered. */
int api_respond(const char *id, int status, const char *body, size_t len);
/* Requests handed to Lua and not answered yet. */
size_t api_pending(void);

int engine_http_request(struct lws *wsi, struct pss *pss);
int engine_http_body_done(struct lws *wsi, struct pss *pss);
int engine_poll_writable(struct lws *wsi, struct pss *pss);

#endif
