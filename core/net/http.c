/* http.c - the HTTP side of the port, on lws: the one protocol handler,
 * the per-request state (struct pss), the framing checks every request
 * passes before any route sees it, the body, and the helpers the routes
 * answer with (responses with CORS, query arguments, the handshake copied
 * for a session). Which route serves a request is the layer above's
 * (http_init's on_request); the route chosen serves the rest of it
 * (struct http_route). Peers are counted here for lws's connections. */
#include "net/http.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/settings.h"
#include "net/peers.h"
#include "wire/websocket.h"

static int (*on_request)(struct lws *wsi, struct pss *pss, const char *path);

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
	const char *list = settings.frontend_url;
	size_t olen = strlen(origin);

	if (!list)
		return 1;
	/* "*" in the list is any origin, as Socket.IO's cors option takes it. */
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
		if ((n == 1 && *p == '*') || (n == olen && strncmp(p, origin, n) == 0))
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

int http_request_closes(struct lws *wsi)
{
	char v[32], version[16];
	int keep_alive = 0, close = 0, http11;

	/* As lws decides it (lws_http_action): HTTP/1.1 keeps the connection
	 * unless the request says "close", HTTP/1.0 closes it unless it says
	 * "keep-alive"; the whole field is compared, without case. */
	if (lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_CONNECTION) > 0) {
		keep_alive = strcasecmp(v, "keep-alive") == 0;
		close = strcasecmp(v, "close") == 0;
	}
	http11 = lws_hdr_copy(wsi, version, sizeof(version), WSI_TOKEN_HTTP) >= 8 &&
		 version[5] == '1' && version[7] == '1';
	return http11 ? close : !keep_alive;
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
	/* Every answer after which the connection ends says so: a client that
	 * keeps connections alive (Node >= 19's default agent) would otherwise
	 * send its next request on a socket about to close, and see "socket
	 * hang up". */
	if (((pss && pss->close_after) || http_request_closes(wsi)) &&
	    add_header(wsi, "connection:", "close", &p, end))
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
	if (pss->route && pss->route->release)
		pss->route->release(pss);
	free(pss->body);
	free(pss->origin);
	pss->body = pss->origin = NULL;
	pss->body_len = pss->body_cap = 0;
}

long long http_content_length(struct lws *wsi)
{
	char buf[32], *end;
	long long n;

	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
		return -ENODATA;
	/* lws joins repeated fields with ',': "5,50" is not a number. */
	if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0 ||
	    buf[0] < '0' || buf[0] > '9')
		return -EBADMSG;
	errno = 0;
	n = strtoll(buf, &end, 10);
	return *end == '\0' && errno == 0 ? n : -EBADMSG;
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

	if (te && length != -ENODATA) {
		status = 400, kind = "te_and_content_length";
		why = "Content-Length and Transfer-Encoding together: the body's length is ambiguous";
	} else if (length == -EBADMSG) {
		status = 400, kind = "bad_content_length";
		why = "the Content-Length is not one number";
	} else if (te) {
		status = 411, kind = "transfer_encoding";
		why = "chunked bodies are not accepted: send the body with a Content-Length";
	} else if (length == -ENODATA && (m == HTTP_POST || m == HTTP_PUT || m == HTTP_PATCH)) {
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
	if (pss->body_len + len > settings.max_payload) {
		/* Keep reading to the end, then answer 413 once. */
		pss->body_too_large = 1;
		return 0;
	}
	if (pss->body_len + len > pss->body_cap) {
		pss->body_cap = (pss->body_len + len) * 2;
		if (pss->body_cap > settings.max_payload + 1)
			pss->body_cap = settings.max_payload + 1;
		pss->body = xrealloc(pss->body, pss->body_cap);
	}
	memcpy(pss->body + pss->body_len, in, len);
	pss->body_len += len;
	return 0;
}

const char *http_head_query_arg(const struct http_head *h, const char *name, char *out,
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

int http_head_path(const struct http_head *h, char *out, size_t outlen)
{
	if (h->path_len >= outlen)
		return -ENOBUFS;
	out[url_decode(h->path, h->path_len, out)] = '\0';
	return 0;
}

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

void http_handshake_from_head(struct handshake *hs, const struct http_head *h, const char *addr)
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

/* The connection is gone: the route lets go of it, then what the request
 * held goes. */
static void on_http_closed(struct lws *wsi, struct pss *pss)
{
	if (pss->route && pss->route->closed)
		pss->route->closed(wsi, pss);
	pss->conn = NULL;
	http_release(pss);
}

/* Starts a request: the per-request half of the pss is reset here, since lws
 * reuses it across keep-alive requests; then the layer above routes it. */
static int on_http(struct lws *wsi, struct pss *pss, const char *path)
{
	http_begin(wsi, pss);
	/* Until its body is read (HTTP_BODY_COMPLETION), an answer ends the
	 * connection: the rest of the body is not read as a request. */
	pss->close_after = http_content_length(wsi) > 0;
	return on_request(wsi, pss, path);
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
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
		/* An upgrade on a connection that served HTTP before: browsers
		 * and socket.io-client open a new one for a WebSocket, which
		 * ws.c serves. */
		static const char own[] = "a WebSocket needs a connection of its own";
		metrics_http_error(400);
		if (!pss) {
			lws_return_http_status(wsi, 400, own);
			return 1;
		}
		http_begin(wsi, pss);
		pss->close_after = 1;
		http_respond(wsi, pss, 400, "text/plain", own, sizeof(own) - 1);
		return 1;
	}
	case LWS_CALLBACK_ADD_HEADERS: {
		/* A static file lws serves: it ends the connection after it as
		 * after any answer (http_request_closes), and says so. */
		struct lws_process_html_args *args = in;
		unsigned char *end = (unsigned char *)args->p + args->max_len;
		if (http_request_closes(wsi) &&
		    add_header(wsi, "connection:", "close", (unsigned char **)&args->p, end))
			return 1;
		return 0;
	}
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
		if (pss->route && pss->route->body_done)
			return pss->route->body_done(wsi, pss);
		/* The request was answered at its headers (a refusal, a route
		 * without a body, a parked poll): a second answer would be
		 * garbage on the connection. */
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (pss->route && pss->route->writable)
			return pss->route->writable(wsi, pss);
		return 0;
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

void http_init(int (*route)(struct lws *wsi, struct pss *pss, const char *path))
{
	on_request = route;
}

const struct lws_protocols *http_protocols(void)
{
	return protocols;
}
