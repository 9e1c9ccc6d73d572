/* server.c - the lws context and the one protocol handler that serves HTTP
 * on the port: Engine.IO polling under /socket.io/, the HTTP API, /healthz
 * and /metrics; the checks and set-up of the WebSockets ws.c serves (the
 * Engine.IO transport and probe, the plain endpoint at a namespace's path);
 * and the drain. lws runs on a libev loop of ours (epoll: a wake-up costs
 * what is ready, not what is connected), and between iterations we write
 * and reap. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "base/alloc.h"
#include "wire/eio.h"
#include "net/files.h"
#include "net/http.h"
#include "wire/json.h"
#include "base/log.h"
#include "base/metrics.h"
#include "net/peers.h"
#include "lua/script.h"
#include "server.h"
#include "store/store.h"
#include "wire/websocket.h"
#include "net/ws.h"

struct server srv;

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int is_engine_path(const char *path)
{
	return strcmp(path, "/socket.io/") == 0 || strcmp(path, "/socket.io") == 0;
}

enum http_method http_method(struct lws *wsi)
{
	static const struct {
		enum lws_token_indexes token;
		enum http_method method;
	} methods[] = {
		{ WSI_TOKEN_GET_URI, HTTP_GET },     { WSI_TOKEN_POST_URI, HTTP_POST },
		{ WSI_TOKEN_OPTIONS_URI, HTTP_OPTIONS }, { WSI_TOKEN_PUT_URI, HTTP_PUT },
		{ WSI_TOKEN_PATCH_URI, HTTP_PATCH }, { WSI_TOKEN_DELETE_URI, HTTP_DELETE },
		{ WSI_TOKEN_HEAD_URI, HTTP_HEAD },
	};

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (lws_hdr_total_length(wsi, methods[i].token) > 0)
			return methods[i].method;
	return HTTP_OTHER;
}

const char *http_method_name(enum http_method m)
{
	switch (m) {
	case HTTP_GET: return "GET";
	case HTTP_POST: return "POST";
	case HTTP_PUT: return "PUT";
	case HTTP_PATCH: return "PATCH";
	case HTTP_DELETE: return "DELETE";
	case HTTP_HEAD: return "HEAD";
	case HTTP_OPTIONS: return "OPTIONS";
	default: return "OTHER";
	}
}

void http_read_origin(struct lws *wsi, struct pss *pss)
{
	int len = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);

	free(pss->origin);
	pss->origin = NULL;
	if (len <= 0 || len > 1024)
		return;
	pss->origin = xmalloc((size_t)len + 1);
	if (lws_hdr_copy(wsi, pss->origin, len + 1, WSI_TOKEN_ORIGIN) < 0) {
		free(pss->origin);
		pss->origin = NULL;
	}
}

int http_origin_allowed(const char *origin)
{
	const char *list = srv.cfg->frontend_url;
	size_t olen = strlen(origin);

	if (!list)
		return 1;
	for (const char *p = list; *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		while (n && *p == ' ')
			p++, n--;
		while (n && p[n - 1] == ' ')
			n--;
		/* A trailing slash in the setting is a common way to write it. */
		if (n && p[n - 1] == '/')
			n--;
		if (n == olen && strncmp(p, origin, n) == 0)
			return 1;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

const char *http_query_arg(struct lws *wsi, const char *name, char *out, size_t outlen)
{
	/* lws copies each query fragment whole into the buffer to compare it,
	 * and stops at the first that does not fit: a long token before EIO=
	 * would hide EIO=. So the scratch holds any fragment a request can. */
	static char scratch[LWS_QUERY_FRAGMENT_MAX];
	const char *v = lws_get_urlarg_by_name(wsi, name, scratch, sizeof(scratch));
	size_t vlen;

	if (!v)
		return NULL;
	vlen = strlen(v);
	if (vlen >= outlen)
		return NULL;
	memcpy(out, v, vlen + 1);
	return out;
}

static int add_header(struct lws *wsi, const char *name, const char *value,
		      unsigned char **p, unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
					   (const unsigned char *)value,
					   (int)strlen(value), p, end);
}

int http_respond(struct lws *wsi, struct pss *pss, int status,
		 const char *content_type, const char *body, size_t len)
{
	unsigned char head[LWS_PRE + 1024];
	unsigned char *start = head + LWS_PRE, *p = start;
	unsigned char *end = head + sizeof(head) - 1;
	unsigned char *out = NULL;
	int rc = -1;

	if (lws_add_http_common_headers(wsi, (unsigned)status, content_type,
					(lws_filepos_t)len, &p, end))
		goto out;
	if (pss && pss->close_after && add_header(wsi, "connection:", "close", &p, end))
		goto out;
	if (pss && pss->origin && http_origin_allowed(pss->origin)) {
		if (add_header(wsi, "access-control-allow-origin:", pss->origin, &p, end) ||
		    add_header(wsi, "access-control-allow-credentials:", "true", &p, end) ||
		    add_header(wsi, "vary:", "Origin", &p, end))
			goto out;
		if (pss->method == HTTP_OPTIONS) {
			char req[256];
			if (add_header(wsi, "access-control-allow-methods:",
				       "GET, POST, PUT, PATCH, DELETE, OPTIONS", &p, end))
				goto out;
			if (lws_hdr_copy(wsi, req, sizeof(req),
					 WSI_TOKEN_HTTP_AC_REQUEST_HEADERS) > 0 &&
			    add_header(wsi, "access-control-allow-headers:", req, &p, end))
				goto out;
		}
	}
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		goto out;
	if (len) {
		/* lws_write wants LWS_PRE bytes of headroom before the body. */
		out = xmalloc(LWS_PRE + len);
		memcpy(out + LWS_PRE, body, len);
		if (lws_write(wsi, out + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int)len)
			goto out;
	}
	/* The request is answered: what it allocated goes now, because
	 * completing the transaction frees the pss itself. A connection whose
	 * next bytes cannot be told from a request is closed (-1: lws flushes
	 * the answer, then closes) rather than read on. */
	if (pss && pss->close_after)
		goto out;
	if (pss)
		http_release(pss);
	rc = lws_http_transaction_completed(wsi) ? -1 : 0;
	free(out);
	return rc;
out:
	if (pss)
		http_release(pss);
	free(out);
	return rc;
}

void http_release(struct pss *pss)
{
	api_closed(pss);
	free(pss->body);
	free(pss->origin);
	pss->body = pss->origin = NULL;
	pss->body_len = pss->body_cap = 0;
}

int http_engine_error(struct lws *wsi, struct pss *pss, int code, const char *msg)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}", code, msg);

	metrics_http_error(400);
	return http_respond(wsi, pss, 400, "application/json", body, (size_t)n);
}

long long http_content_length(struct lws *wsi)
{
	char buf[32], *end;
	long long n;

	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
		return -1;
	/* lws joins repeated fields with ',': "5,50" is not a number. */
	if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0 ||
	    buf[0] < '0' || buf[0] > '9')
		return -2;
	errno = 0;
	n = strtoll(buf, &end, 10);
	return *end == '\0' && errno == 0 ? n : -2;
}

/* Resets the per-request half of the pss: lws reuses it across keep-alive
 * requests. */
static void http_begin(struct lws *wsi, struct pss *pss)
{
	http_release(pss);
	memset(pss, 0, sizeof(*pss));
	pss->method = http_method(wsi);
	http_read_origin(wsi, pss);
}

/* How long a request's body is must be plain (RFC 9112 §6.3), or the bytes
 * after it may be a body to a proxy in front of us and a request to us (or
 * the reverse): request smuggling. lws 4.1 reads no chunked body (it takes
 * the chunks for the next request, or for a body it thinks is 100 MB long,
 * as it does a POST without a length) and believes the first of two
 * Content-Lengths. So, on every path (the routes, polling, /healthz, the
 * static files) and before any route sees it, a request with
 * Transfer-Encoding, with a Content-Length that is not one number, or with
 * a POST, PUT or PATCH without one, is answered and its connection closed:
 * nothing after its head is read. Returns what the filter callback should:
 * 0 to go on, -1 when answered. */
static int check_framing(struct lws *wsi, struct pss *pss, const char *path)
{
	enum http_method m = http_method(wsi);
	int te = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
	long long length = http_content_length(wsi);
	const char *why, *kind;
	char addr[64], body[256];
	int status, n;

	if (te && length != -1) {
		status = 400, kind = "te_and_content_length";
		why = "Content-Length and Transfer-Encoding together: the body's length is ambiguous";
	} else if (length == -2) {
		status = 400, kind = "bad_content_length";
		why = "the Content-Length is not one number";
	} else if (te) {
		status = 411, kind = "transfer_encoding";
		why = "chunked bodies are not accepted: send the body with a Content-Length";
	} else if (length == -1 && (m == HTTP_POST || m == HTTP_PUT || m == HTTP_PATCH)) {
		status = 411, kind = "no_content_length";
		why = "a POST, PUT or PATCH needs a Content-Length (0 for no body)";
	} else {
		return 0;
	}
	http_begin(wsi, pss);
	pss->close_after = 1;
	lws_get_peer_simple(wsi, addr, sizeof(addr));
	log_info("HTTP %.100s from %s: %s: %d, connection closed", path, addr, why, status);
	metrics_protocol_error(kind);
	metrics_http_error(status);
	n = snprintf(body, sizeof(body), "{\"status\":\"error\",\"statusCode\":%d,\"message\":\"%s\"}",
		     status, why);
	http_respond(wsi, pss, status, "application/json", body, (size_t)n);
	return -1;
}

static int serve_plain_http(struct lws *wsi, struct pss *pss, const char *path)
{
	if (strcmp(path, "/healthz") == 0 && srv.draining) {
		/* A load balancer on a kept-alive connection learns to look elsewhere. */
		static const char going[] = "{\"status\":\"shutting down\"}";
		return http_respond(wsi, pss, 503, "application/json", going, sizeof(going) - 1);
	}
	if (strcmp(path, "/healthz") == 0) {
		char body[128];
		int n = snprintf(body, sizeof(body),
				 "{\"status\":\"ok\",\"uptimeMs\":%lld,\"sockets\":%llu}",
				 (long long)(now_ms() - srv.started_ms),
				 (unsigned long long)srv.sockets);
		return http_respond(wsi, pss, 200, "application/json", body, (size_t)n);
	}
	if (strcmp(path, "/metrics") == 0) {
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

/* Starts a request: the per-request half of the pss is reset here, since lws
 * reuses it across keep-alive requests. */
static int on_http(struct lws *wsi, struct pss *pss, const char *path)
{
	http_begin(wsi, pss);
	/* Until its body is read (HTTP_BODY_COMPLETION), an answer ends the
	 * connection: the rest of the body is not read as a request. */
	pss->close_after = http_content_length(wsi) > 0;
	if (is_engine_path(path))
		return engine_http_request(wsi, pss);
	if (strncmp(path, "/api/", 5) == 0)
		return api_request_begin(wsi, pss, path);
	return serve_plain_http(wsi, pss, path);
}

static int on_http_body(struct lws *wsi, struct pss *pss, const char *in, size_t len)
{
	/* lws may hand an empty piece (a POST with no body) before any buffer
	 * exists: there is nothing to copy, and NULL + 0 is undefined. */
	if (pss->body_too_large || len == 0)
		return 0;
	if (!pss->body_seen) {
		/* lws 4.1.6 hands a request with a body that came pipelined
		 * behind another one (in the same read) the first bytes of its
		 * own head as its body, as many as its Content-Length says,
		 * then loops forever in lws_http_action (the whole server
		 * stops). A body that begins like this request's "METHOD /" is
		 * taken for that: no body parley reads (JSON, Engine.IO
		 * packets) begins with a capital letter. It is answered 400 and
		 * the connection closed, which ends lws's loop as well. */
		static const char refused[] =
			"{\"status\":\"error\",\"statusCode\":400,\"message\":\"the body begins like a "
			"request line: a request pipelined behind another with a body cannot be read; "
			"send it on its own\"}";
		char line[16], addr[64];
		int n = snprintf(line, sizeof(line), "%s /", http_method_name(pss->method));
		pss->body_seen = 1;
		if (memcmp(in, line, len < (size_t)n ? len : (size_t)n) == 0) {
			lws_get_peer_simple(wsi, addr, sizeof(addr));
			metrics_protocol_error("pipelined_body");
			metrics_http_error(400);
			log_info("HTTP %s from %s: a body that begins like a request line (pipelined "
				 "behind another?): 400, connection closed", http_method_name(pss->method),
				 addr);
			pss->close_after = 1;
			http_respond(wsi, pss, 400, "application/json", refused, sizeof(refused) - 1);
			return -1;
		}
	}
	if (pss->body_len + len > srv.cfg->max_payload) {
		/* Keep reading to the end, then answer 413 once. */
		pss->body_too_large = 1;
		return 0;
	}
	if (pss->body_len + len > pss->body_cap) {
		pss->body_cap = (pss->body_len + len) * 2;
		if (pss->body_cap > srv.cfg->max_payload + 1)
			pss->body_cap = srv.cfg->max_payload + 1;
		pss->body = xrealloc(pss->body, pss->body_cap);
	}
	memcpy(pss->body + pss->body_len, in, len);
	pss->body_len += len;
	return 0;
}

/* The value of query argument `name` of an upgrade request, decoded into
 * `out`; NULL when absent or longer than outlen - 1. */
static const char *head_query_arg(const struct http_head *h, const char *name, char *out,
				  size_t outlen)
{
	const char *k, *v;
	size_t pos = 0, klen, vlen;

	while (query_next(h->query, h->query_len, &pos, &k, &klen, &v, &vlen)) {
		if (klen != strlen(name) || memcmp(k, name, klen) != 0)
			continue;
		if (!v || vlen >= outlen)
			return NULL;
		out[url_decode(v, vlen, out)] = '\0';
		return out;
	}
	return NULL;
}

/* The target's path, decoded, into `out`; -1 when it does not fit. */
static int head_path(const struct http_head *h, char *out, size_t outlen)
{
	if (h->path_len >= outlen)
		return -1;
	out[url_decode(h->path, h->path_len, out)] = '\0';
	return 0;
}

int server_ws_check(const struct http_head *h, struct ws_route *route, const char **why)
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
			return 403;
		}
	}
	if (srv.draining) {
		*why = "server shutting down";
		return 503;
	}
	if (head_path(h, path, sizeof(path)) < 0)
		goto bad;
	if (is_engine_path(path)) {
		v = head_query_arg(h, "EIO", buf, sizeof(buf));
		if (!v || strcmp(v, "4") != 0)
			goto bad;
		v = head_query_arg(h, "transport", buf, sizeof(buf));
		if (!v || strcmp(v, "websocket") != 0)
			goto bad;
		v = head_query_arg(h, "sid", buf, sizeof(buf));
		route->plain = NULL;
		route->probe_of = NULL;
		if (v) {
			struct conn *c = map_get(&srv.conns, v, strlen(v));
			if (!c || c->transport != TRANSPORT_POLLING || c->probe)
				goto bad;
			route->probe_of = c;
		}
		return 0;
	}
	if (path[0] == '/' && path[1] && (route->plain = nsp_lookup(path, strlen(path)))) {
		route->probe_of = NULL;
		return 0;
	}
	*why = "not found";
	return 404;
bad:
	*why = "bad request";
	return 400;
}

/* Copies what the upgrade request said; its headers are gone after this
 * callback. */
void http_handshake_fini(struct handshake *hs)
{
	free(hs->query);
	free(hs->authorization);
	hs->query = hs->authorization = NULL;
}

void http_handshake_copy(struct handshake *hs, struct lws *wsi)
{
	char frag[1024];
	size_t cap = 0;
	int len;

	for (int i = 0; (len = lws_hdr_copy_fragment(wsi, frag, sizeof(frag),
						     WSI_TOKEN_HTTP_URI_ARGS, i)) >= 0; i++) {
		char *eq = memchr(frag, '=', (size_t)len);
		/* "key\0value\0", or "key\0\0" for a bare key. */
		size_t need = (size_t)len + (eq ? 1 : 2);
		if (hs->query_len + need > cap) {
			cap = (hs->query_len + need) * 2;
			hs->query = xrealloc(hs->query, cap);
		}
		char *dst = hs->query + hs->query_len;
		if (eq) {
			*eq = '\0';
			memcpy(dst, frag, (size_t)len);
			dst[len] = '\0';
		} else {
			memcpy(dst, frag, (size_t)len);
			dst[len] = '\0';
			dst[len + 1] = '\0';
		}
		hs->query_len += need;
		hs->nquery++;
	}
	len = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	if (len > 0 && len < 8192) {
		hs->authorization = xmalloc((size_t)len + 1);
		if (lws_hdr_copy(wsi, hs->authorization, len + 1,
				 WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
			free(hs->authorization);
			hs->authorization = NULL;
		}
	}
	lws_get_peer_simple(wsi, hs->addr, sizeof(hs->addr));
}

/* The same from an upgrade request that parley read itself. */
static void handshake_from_head(struct handshake *hs, const struct http_head *h,
				const char *addr)
{
	const struct http_field *auth = http_head_field(h, "authorization");
	const char *k, *v;
	size_t pos = 0, klen, vlen;

	/* "key\0value\0" per pair, decoded: never longer than the raw query
	 * plus two terminators per pair. (ws.c answers a %00 in the target with
	 * 400 before this, and before lws: no key or value holds a NUL.) */
	hs->query = h->query_len ? xmalloc((size_t)h->query_len * 2 + 2) : NULL;
	while (query_next(h->query, h->query_len, &pos, &k, &klen, &v, &vlen)) {
		char *dst = hs->query + hs->query_len;
		size_t n = url_decode(k, klen, dst);
		dst[n++] = '\0';
		if (v)
			n += url_decode(v, vlen, dst + n);
		dst[n++] = '\0';
		hs->query_len += n;
		hs->nquery++;
	}
	if (auth && auth->value_len < 8192)
		hs->authorization = xstrndup(auth->value, auth->value_len);
	snprintf(hs->addr, sizeof(hs->addr), "%s", addr);
}

void server_ws_open(struct ws *w, const struct http_head *h, const struct ws_route *route,
		    const char *addr)
{
	struct conn *c;

	if (route->probe_of) {
		route->probe_of->probe = w;
		ws_attach(w, route->probe_of);
		return;
	}
	c = conn_new(route->plain ? CONN_PLAIN : CONN_EIO, TRANSPORT_WEBSOCKET);
	c->ws = w;
	ws_attach(w, c);
	handshake_from_head(&c->hs, h, addr);
	if (route->plain) {
		conn_heartbeat_start(c);
		plain_on_open(c, route->plain);
		return;
	}
	conn_send(c, engine_open_frame(c));
	conn_heartbeat_open(c);
}

void server_ws_closed(struct conn *c, struct ws *w)
{
	if (c->probe == w) {
		c->probe = NULL;
		c->upgrading = 0;
		return;
	}
	if (c->ws == w) {
		c->ws = NULL;
		conn_close(c, "transport close");
	}
}

void server_ws_pong(struct conn *c)
{
	if (c->kind == CONN_PLAIN && c->state == CONN_OPEN)
		conn_heartbeat_start(c);
}

static void on_http_closed(struct lws *wsi, struct pss *pss)
{
	struct conn *c = pss->conn;

	if (c && c->poll == wsi)
		c->poll = NULL;
	pss->conn = NULL;
	http_release(pss);
}

static int on_callback(struct lws *wsi, enum lws_callback_reasons reason,
		       void *user, void *in, size_t len)
{
	struct pss *pss = user;

	/* Connections per address: ws.c admitted this one at accept and
	 * handed it over; from here it is counted as lws's. */
	switch (reason) {
	case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED: {
		struct sockaddr_storage addr;
		socklen_t alen = sizeof(addr);
		if (getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&addr, &alen) == 0)
			peers_opened(wsi, &addr);
		return 0;
	}
	case LWS_CALLBACK_WSI_DESTROY:
		peers_closed(wsi);
		return 0;
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		/* An upgrade on a connection that served HTTP before: browsers
		 * and socket.io-client open a new one for a WebSocket, which
		 * ws.c serves. */
		metrics_http_error(400);
		lws_return_http_status(wsi, 400, "a WebSocket needs a connection of its own");
		return 1;
	default:
		break;
	}

	/* A connection that never got as far as a request (it waited for a
	 * header table and timed out, say) has no pss: nothing of ours. */
	if (!pss && reason != LWS_CALLBACK_EVENT_WAIT_CANCELLED)
		return lws_callback_http_dummy(wsi, reason, user, in, len);

	switch (reason) {
	case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
		return check_framing(wsi, pss, in);
	case LWS_CALLBACK_HTTP:
		return on_http(wsi, pss, in);
	case LWS_CALLBACK_HTTP_BODY:
		return on_http_body(wsi, pss, in, len);
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		/* The whole body is read: the connection can go on. */
		pss->close_after = 0;
		if (pss->role == ROLE_API)
			return api_body_done(wsi, pss);
		if (pss->role == ROLE_POLL_POST)
			return engine_http_body_done(wsi, pss);
		/* The request was answered at its headers (a refusal, a route
		 * without a body, a parked poll): a second answer would be
		 * garbage on the connection. */
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (pss->role == ROLE_API)
			return api_writable(wsi, pss);
		return engine_poll_writable(wsi, pss);
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		on_http_closed(wsi, pss);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

/* HTTP only: WebSockets are ws.c's. */
static struct lws_protocols protocols[] = {
	{ "parley", on_callback, sizeof(struct pss), 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static void on_lws_log(int level, const char *line)
{
	size_t n = strlen(line);

	while (n && line[n - 1] == '\n')
		n--;
	if (level & LLL_ERR)
		log_warn("lws: %.*s", (int)n, line);
	else
		log_debug("lws: %.*s", (int)n, line);
}

static ev_prepare between_iterations;

static const lws_retry_bo_t no_validity_timer;
static struct lws_http_mount static_mount;

void timer_start(ev_timer *t, void (*cb)(struct ev_loop *, ev_timer *, int), double ms)
{
	ev_timer_stop(srv.loop, t);
	ev_timer_init(t, cb, ms / 1000.0, 0.);
	ev_timer_start(srv.loop, t);
}

void timer_stop(ev_timer *t)
{
	ev_timer_stop(srv.loop, t);
}

/* ---- the drain: what SIGTERM (or SIGINT) starts ----
 * 1. settle: the listen socket closes (a new connection is refused by the
 *    kernel; see drain_listening for polling); client events, new sessions,
 *    upgrades and API requests get 503 "the server is shutting down"; the
 *    writes already handed to the store commit, and the jobs that waited for
 *    them run, so their acks and emits are queued. Settled is when a store
 *    barrier completes and nothing was submitted after it.
 * 2. close: every connection is told (conn_shutdown), after what is queued
 *    for it; the loop runs until each WebSocket's closing handshake is done,
 *    each polling session's close packet has gone out in a poll and each
 *    parked API request is answered.
 * Each step is bounded by its share of PARLEY_SHUTDOWN_TIMEOUT; what is
 * left then is closed by server_fini. */
enum drain_step { DRAIN_OFF, DRAIN_SETTLE, DRAIN_CLOSE };

/* How long the port stays open after the last polling session was told. */
#define DRAIN_POLL_LINGER_MS 250

static struct {
	enum drain_step step;
	uint64_t barrier;  /* the store sequence number of the last barrier */
	int barrier_done;  /* it completed (its callback ran) */
	int expired;       /* the current step's time is up */
	size_t polling_told; /* polling sessions sent a close packet */
	int linger_done;
	int64_t started;
	ev_timer timer;
	ev_timer linger;
} drain;

enum conn_filter { CONN_ANY, CONN_UNTOLD, CONN_POLLING_UNTOLD };

/* Open connections; those not told yet (a polling session whose close
 * packet a poll has taken is told); the polling ones among those. */
static size_t conn_count(enum conn_filter which)
{
	size_t n = 0;

	for (struct conn *c = srv.all; c; c = c->all_next)
		n += which == CONN_ANY ||
		     (!c->close_sent && (which == CONN_UNTOLD ||
					 (c->kind == CONN_EIO && c->transport == TRANSPORT_POLLING)));
	return n;
}

static void on_drain_linger(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l;
	(void)t;
	(void)revents;
	drain.linger_done = 1;
}

/* When to close the listening socket. A polling client may open a new
 * connection for any poll, so the port stays open while a polling session
 * waits to be told (new sessions, upgrades and API requests get 503
 * meanwhile), and a little longer once told: a POST it sent before it read
 * the close packet must not find the port closed, or the client reports a
 * transport error instead of the close. */
static void drain_listening(void)
{
	if (!ws_is_listening() || conn_count(CONN_POLLING_UNTOLD))
		return;
	if (!drain.polling_told || drain.linger_done) {
		ws_stop_listening();
		return;
	}
	if (!ev_is_active(&drain.linger))
		timer_start(&drain.linger, on_drain_linger, DRAIN_POLL_LINGER_MS);
}

static void on_drain_barrier(void *arg, int err)
{
	(void)arg;
	(void)err;
	drain.barrier_done = 1;
}

static void on_drain_timer(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l;
	(void)t;
	(void)revents;
	drain.expired = 1;
}

/* Whether the store has settled: called between iterations, after the
 * completions of a round and the Lua jobs they resumed (which may have
 * written again). Submits the next barrier when the last one is done. */
static int drain_settled(void)
{
	uint64_t seq;

	if (!drain.barrier_done)
		return 0;
	drain.barrier_done = 0;
	seq = store_submit(store_batch_new(), on_drain_barrier, NULL);
	/* Nothing came between the two barriers: every write is durable and
	 * every job waiting for one has run. */
	if (seq == drain.barrier + 1)
		return 1;
	drain.barrier = seq;
	return 0;
}

/* Advances the drain; returns 1 once the loop may stop. */
static int drain_advance(void)
{
	int budget = srv.cfg->shutdown_timeout_ms;

	switch (drain.step) {
	case DRAIN_OFF:
		log_info("stopping: new connections are refused; waiting for the store, then "
			 "closing %zu connections (PARLEY_SHUTDOWN_TIMEOUT %d ms)",
			 conn_count(CONN_ANY), budget);
		srv.draining = 1;
		drain.started = now_ms();
		drain_listening();
		drain.barrier = store_submit(store_batch_new(), on_drain_barrier, NULL);
		drain.step = DRAIN_SETTLE;
		/* Two thirds to settle, the rest for the closing handshakes. */
		timer_start(&drain.timer, on_drain_timer, budget * 2 / 3);
		return 0;
	case DRAIN_SETTLE:
		drain_listening();
		if (!drain.expired && !drain_settled())
			return 0;
		if (drain.expired)
			log_warn("stopping: the store did not settle within PARLEY_SHUTDOWN_TIMEOUT: "
				 "closing the connections anyway");
		drain.expired = 0;
		drain.step = DRAIN_CLOSE;
		timer_start(&drain.timer, on_drain_timer, budget - budget * 2 / 3);
		drain.polling_told = conn_count(CONN_POLLING_UNTOLD);
		for (struct conn *c = srv.all, *next; c; c = next) {
			next = c->all_next;
			conn_shutdown(c);
		}
		return 0;
	case DRAIN_CLOSE:
		drain_listening();
		if (!conn_count(CONN_UNTOLD) && !srv.ws_open && !api_pending() &&
		    !ws_is_listening()) {
			timer_stop(&drain.timer);
			log_info("stopping: every client told, in %lld ms",
				 (long long)(now_ms() - drain.started));
			return 1;
		}
		if (!drain.expired)
			return 0;
		log_warn("stopping: %zu connections, %u WebSockets and %zu API requests left "
			 "after PARLEY_SHUTDOWN_TIMEOUT: closing them", conn_count(CONN_UNTOLD), srv.ws_open,
			 api_pending());
		return 1;
	}
	return 1;
}

/* Runs after each iteration's callbacks, before the loop waits again: what
 * the iteration queued is written, closed connections are freed, and the
 * flags the signal handlers set are acted on. */
static void on_between_iterations(struct ev_loop *l, ev_prepare *w, int revents)
{
	int stop;

	(void)w;
	(void)revents;
	/* First, so that what the drain queues is written in this pass. */
	stop = srv.stopping && drain_advance();
	conn_flush();
	conn_reap();
	if (srv.reload_requested) {
		srv.reload_requested = 0;
		/* The scripts that ran are the ones that drain: their shutdown
		 * hooks write what they kept in memory. */
		if (srv.stopping)
			log_warn("reload ignored: parley is shutting down");
		else if (script_reload() == 0)
			log_info("scripts reloaded");
	}
	/* Last: no read transaction is held while the loop waits. */
	store_read_done();
	if (stop)
		ev_break(l, EVBREAK_ALL);
}

static struct metrics_value sockets_metric = {
	.name = "parley_sockets", .help = "Connected sockets (namespace connections).",
	.type = "gauge", .count = &srv.sockets,
};

int server_start(struct config *cfg)
{
	struct lws_context_creation_info info;
	void *loops[1];

	metrics_register(&sockets_metric);

	srv.cfg = cfg;
	srv.started_ms = now_ms();
	map_init(&srv.conns);
	map_init(&srv.clients);
	map_init(&srv.nsps);
	api_init();
	peers_init(cfg->max_conns_per_ip);
	lws_set_log_level(LLL_ERR | LLL_WARN, on_lws_log);

	srv.loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
	if (!srv.loop) {
		log_error("cannot create the event loop (epoll)");
		return -1;
	}
	ev_prepare_init(&between_iterations, on_between_iterations);
	ev_prepare_start(srv.loop, &between_iterations);
	loops[0] = srv.loop;

	memset(&info, 0, sizeof(info));
	/* parley listens and accepts (ws.c); lws gets the HTTP connections. */
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = protocols;
	info.foreign_loops = loops;
	if (cfg->static_mount) {
		/* Files under a prefix of their own, served by lws through our
		 * open (files.c), which keeps them inside the directory. */
		static char prefix[128];
		const char *eq = strchr(cfg->static_mount, '=');
		size_t plen = (size_t)(eq - cfg->static_mount);
		memcpy(prefix, cfg->static_mount, plen);
		prefix[plen] = '\0';
		static_mount.mountpoint = prefix;
		static_mount.mountpoint_len = (unsigned char)plen;
		static_mount.origin = eq + 1;
		static_mount.def = "index.html";
		static_mount.origin_protocol = LWSMPRO_FILE;
		info.mounts = &static_mount;
	}
	info.options = LWS_SERVER_OPTION_LIBEV;
	/* A handshake (HTTP request, WebSocket upgrade) gets this long. */
	info.timeout_secs = (unsigned)((cfg->connect_timeout_ms + 999) / 1000);
	info.timeout_secs_ah_idle = info.timeout_secs; /* a request's headers, too */
	/* Liveness is ours (conn.c heartbeats, on libev's timer heap). lws's
	 * own per-connection validity timer would go into its sorted list, a
	 * walk of every connection for each new one (a third of the CPU of a
	 * connect burst at 10,000 sockets); a policy without it turns it off. */
	info.retry_and_idle_policy = &no_validity_timer;
	/* A parked long-poll holds its header table until it is answered, so
	 * the pool bounds how many polling clients can wait at once. lws
	 * allocates tables on demand: a large bound costs nothing unused. */
	info.max_http_header_data = LWS_QUERY_FRAGMENT_MAX;
	info.max_http_header_pool = 8192;
	srv.ctx = lws_create_context(&info);
	if (!srv.ctx) {
		log_error("cannot create the lws context");
		return -1;
	}
	if (cfg->static_mount)
		files_init(srv.ctx, static_mount.origin);
	return ws_listen(cfg->port);
}

void server_run(void)
{
	if (!srv.stopping)
		ev_run(srv.loop, 0);
}

void server_loop_fini(void)
{
	if (srv.loop) {
		timer_stop(&drain.timer);
		timer_stop(&drain.linger);
		ev_prepare_stop(srv.loop, &between_iterations);
		ev_loop_destroy(srv.loop);
		srv.loop = NULL;
	}
}

void server_request_reload(void)
{
	srv.reload_requested = 1;
	if (srv.ctx)
		lws_cancel_service(srv.ctx);
}

void server_stop(void)
{
	srv.stopping = 1;
	if (srv.ctx)
		lws_cancel_service(srv.ctx);
}

void server_fini(void)
{
	struct map_iter it;
	struct map_entry *e;

	/* Sessions between polls have no socket for lws to close: close every
	 * connection here (their scripts' disconnect hooks run), then let the
	 * context close the sockets. */
	while (srv.all)
		conn_close(srv.all, "server shutdown");
	ws_fini();
	if (srv.ctx)
		lws_context_destroy(srv.ctx);
	srv.ctx = NULL;
	srv.dirty = NULL; /* every connection is closed: nothing to write */
	conn_reap();
	api_fini();
	peers_fini();
	srv.last_nsp = NULL;
	map_iter_init(&it, &srv.nsps);
	while ((e = map_next(&it)))
		nsp_free(e->value);
	map_fini(&srv.nsps);
	map_fini(&srv.conns);
	map_fini(&srv.clients);
}
