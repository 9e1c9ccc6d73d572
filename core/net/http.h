/* http.h - HTTP on lws: the one protocol handler (every request is checked
 * for a plain framing, then routed by the layer above: http_init), the
 * per-request state, the route that serves a request once chosen, and the
 * helpers routes answer with: responses with CORS, query arguments, the
 * request's handshake copied for a session. Errors are negative codes
 * (base/error.h), except where a function answers "for the lws callback":
 * that is lws's contract, 0 to go on, non-zero to close the connection. */
#ifndef PARLEY_HTTP_H
#define PARLEY_HTTP_H

#include <stddef.h>

#include <libwebsockets.h>

#include "base/frame.h"

/* base/ knows nothing of lws: here, where lws is used, the frames' headroom
 * is held to be enough for lws_write (see FRAME_HEADROOM). */
_Static_assert(FRAME_HEADROOM >= LWS_PRE, "a frame's headroom is smaller than LWS_PRE");

struct conn;
struct http_head;
struct pss;

enum http_method { HTTP_OTHER, HTTP_GET, HTTP_POST, HTTP_OPTIONS, HTTP_PUT,
		   HTTP_PATCH, HTTP_DELETE, HTTP_HEAD };

/* What serves a request after its head, set in pss->route by the route
 * that took it (none: it was answered at its head). Any may be NULL. */
struct http_route {
	/* The whole body is read (pss->body, http.c's). Returns what the lws
	 * callback should. */
	int (*body_done)(struct lws *wsi, struct pss *pss);
	/* The connection can be written (the route asked for it). Returns
	 * what the lws callback should. */
	int (*writable)(struct lws *wsi, struct pss *pss);
	/* The connection is gone, before the request is released. */
	void (*closed)(struct lws *wsi, struct pss *pss);
	/* The request is over (answered, or its connection gone): frees
	 * pss->route_data. May come more than once. */
	void (*release)(struct pss *pss);
};

/* Per-connection state lws keeps for us; reused across keep-alive requests,
 * so everything about one request is reset when the next begins. */
struct pss {
	struct conn *conn; /* the polling session of a poll or POST */
	const struct http_route *route;
	enum http_method method;
	char *body;
	size_t body_len;
	size_t body_cap;
	int body_too_large;
	int body_seen; /* a piece of the body came (HTTP_BODY) */
	char dead_poll; /* the poll's session closed: answer with this Engine.IO
			 * packet ('1' close, or '6' noop when the client
			 * closed it), or 0 */
	int close_after; /* answer with "connection: close" and close: what
			  * follows on the connection cannot be told from a
			  * request (a body not read, a length not clear) */
	char *origin; /* the request's Origin header, or NULL */
	void *route_data; /* the route's own (an HTTP API request in progress) */
};

/* The lws protocols to create the context with (static: http.c's): every
 * request and connection of lws's goes through their handler. */
const struct lws_protocols *http_protocols(void);
/* Sets what routes a request, once its framing is checked: `route` answers
 * it or sets pss->route, and returns what the lws callback should. */
void http_init(int (*route)(struct lws *wsi, struct pss *pss, const char *path));

/* The request's method, from the headers lws parsed. */
enum http_method http_method(struct lws *wsi);
/* "GET", "POST", ...; "OTHER" for the rest (static strings). */
const char *http_method_name(enum http_method m);
/* The request's Content-Length: its value (0 or more), -ENODATA when there
 * is none, -EBADMSG when it is not one decimal number (repeated, a list, a
 * sign, junk, overflow). */
long long http_content_length(struct lws *wsi);
/* Frees what the current request allocated in the pss (body, origin, the
 * route's data, through its release); the pss stays. */
void http_release(struct pss *pss);
/* Copies the Origin header into pss->origin (the pss's; NULL when absent
 * or over 1 KB). */
void http_read_origin(struct lws *wsi, struct pss *pss);
/* The value of query argument `name` ("sid=": keep the '='), copied into
 * `out` and returned; NULL when absent or longer than outlen - 1. */
const char *http_query_arg(struct lws *wsi, const char *name, char *out, size_t outlen);
/* The request's header table holds at most this much (max_http_header_data). */
#define LWS_QUERY_FRAGMENT_MAX 4096
/* 1 if FRONTEND_URL allows this Origin (always, when unset or when "*" is
 * in its list), else 0. */
int http_origin_allowed(const char *origin);
/* 1 if lws ends the connection once the current request is answered (the
 * request said "Connection: close", or is HTTP/1.0 without keep-alive),
 * else 0. */
int http_request_closes(struct lws *wsi);
/* Writes a whole response (`body` is copied), with CORS headers for an
 * allowed origin, "connection: close" when the connection ends after it,
 * and finishes the transaction; what the request held in
 * the pss is released. Returns what the lws callback should: 0, or -1 to
 * close the connection (the answer is flushed first). */
int http_respond(struct lws *wsi, struct pss *pss, int status,
		 const char *content_type, const char *body, size_t len);

/* What the handshake request said, kept for each namespace CONNECT (and
 * for an HTTP API request, its query). */
struct handshake {
	char *query;       /* decoded "key\0value\0" pairs */
	size_t query_len;
	int nquery;
	char *authorization; /* the Authorization header, or NULL */
	char addr[48];       /* the peer's address */
};

/* Copies the query, Authorization and peer address of the request into
 * `hs` (they are gone once its callback returns); `hs` owns the copies
 * until http_handshake_fini. */
void http_handshake_copy(struct handshake *hs, struct lws *wsi);
/* The same from an upgrade request that parley read itself (ws.c), from
 * the peer at `addr`. */
void http_handshake_from_head(struct handshake *hs, const struct http_head *h, const char *addr);
/* Frees what http_handshake_copy or _from_head allocated. */
void http_handshake_fini(struct handshake *hs);

/* The value of query argument `name` of an upgrade request, decoded into
 * `out` and returned; NULL when absent or longer than outlen - 1. */
const char *http_head_query_arg(const struct http_head *h, const char *name, char *out,
				size_t outlen);
/* The target's path of an upgrade request, decoded, into `out`: 0, or
 * -ENOBUFS when it does not fit. */
int http_head_path(const struct http_head *h, char *out, size_t outlen);

#endif
