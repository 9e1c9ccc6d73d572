/* host_http.c - scripts' outbound HTTP (core.http_request, parley.http.request):
 * libcurl's multi interface driven by parley's libev loop, one ev_io per
 * socket curl watches and one ev_timer for curl's timeout; never a blocking
 * call, never a thread. A request hands its job a ticket; when curl is done
 * with it, the answer goes to the seam's on_done, which resumes the job. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/settings.h"
#include "lua/host.h"
#include "lua/tickets.h"

/* A request's own timeout when the script gives none, and the most it may
 * ask for. */
#define HTTP_DEFAULT_TIMEOUT_MS 10000
#define HTTP_MAX_TIMEOUT_MS 600000
/* Redirects followed when a script asks for them. */
#define HTTP_MAX_REDIRECTS 5
/* Response header lines kept (their bytes count in the response's cap). */
#define HTTP_MAX_HEADER_LINES 100

struct http_reply {
	struct http_reply *prev, *next; /* the requests in flight */
	CURL *easy;
	uintptr_t ticket;
	struct curl_slist *headers; /* the request's */
	char *body;                 /* the response's, len bytes */
	size_t len, cap;
	char *head;                 /* the response's header lines, head_len bytes */
	size_t head_len, head_cap;
	unsigned head_lines;
	int too_large;
	int64_t started_ms;
	long status;
	const char *err;            /* set when it failed: a static string */
	char err_buf[CURL_ERROR_SIZE];
};

/* One socket curl asked us to watch. */
struct http_socket {
	ev_io io;
	curl_socket_t fd;
	struct http_socket *prev, *next; /* every socket watched */
};

/* Lists of what is in flight, for http_fini. */
static struct http_reply *replies;
static struct http_socket *watched;

#define LIST_ADD(head, x)                   \
	do {                                \
		(x)->prev = NULL;           \
		(x)->next = (head);         \
		if (head)                   \
			(head)->prev = (x); \
		(head) = (x);               \
	} while (0)
#define LIST_DEL(head, x)                             \
	do {                                          \
		if ((x)->prev)                        \
			(x)->prev->next = (x)->next;  \
		else                                  \
			(head) = (x)->next;           \
		if ((x)->next)                        \
			(x)->next->prev = (x)->prev;  \
	} while (0)

static CURLM *multi;
static ev_timer multi_timer;
static void (*finished)(uintptr_t ticket, struct http_reply *r);

static uint64_t http_inflight;
static uint64_t http_ok, http_failed, http_usec;

static struct metrics_value http_metrics[] = {
	{ .name = "parley_http_requests_total{result=\"ok\"}",
	  .help = "Scripts' HTTP requests (parley.http.request) that ended: ok got an answer "
		  "(any status), failed did not (refused, timeout, too large, TLS, ...).",
	  .type = "counter", .count = &http_ok },
	{ .name = "parley_http_requests_total{result=\"failed\"}", .count = &http_failed },
	{ .name = "parley_http_inflight", .help = "Scripts' HTTP requests waiting for an answer.",
	  .type = "gauge", .count = &http_inflight },
	{ .name = "parley_http_seconds_total",
	  .help = "Time scripts' HTTP requests took, start to end, summed.", .type = "counter",
	  .usec = &http_usec },
};

static void reply_free(struct http_reply *r)
{
	if (!r)
		return;
	curl_slist_free_all(r->headers);
	free(r->body);
	free(r->head);
	free(r);
}

/* Appends to a growing buffer, within `max` bytes in all. Returns 0, or -1
 * past the cap (nothing appended). */
static int append(char **buf, size_t *len, size_t *cap, const char *data, size_t n, size_t max)
{
	if (n > max || *len > max - n)
		return -1;
	if (*len + n > *cap) {
		size_t want = *cap ? *cap : 4096;
		while (want < *len + n)
			want *= 2;
		if (want > max)
			want = max;
		*buf = xrealloc(*buf, want);
		*cap = want;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_reply *r = arg;
	size_t n = size * nmemb;

	/* The headers count in the cap too: the whole answer is bounded. */
	if (append(&r->body, &r->len, &r->cap, data, n, settings.http_max_response - r->head_len) < 0) {
		r->too_large = 1;
		return 0; /* curl stops: CURLE_WRITE_ERROR */
	}
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_reply *r = arg;
	size_t n = size * nmemb;

	/* A new response (after a 100 Continue, or a redirect followed): only
	 * the last one's headers are the answer's. */
	if (n > 5 && memcmp(data, "HTTP/", 5) == 0) {
		r->head_len = 0;
		r->head_lines = 0;
	}
	if (++r->head_lines > HTTP_MAX_HEADER_LINES ||
	    append(&r->head, &r->head_len, &r->head_cap, data, n, settings.http_max_response) < 0) {
		r->too_large = 1;
		return 0;
	}
	return n;
}

/* What a failure is called for the script: the few a caller acts on by
 * name, curl's own words for the rest. */
static const char *failure_of(struct http_reply *r, CURLcode rc)
{
	if (r->too_large || rc == CURLE_FILESIZE_EXCEEDED)
		return "too large";
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return "refused";
	case CURLE_OPERATION_TIMEDOUT:
		return "timeout";
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_COULDNT_RESOLVE_HOST:
		return "bad URL";
	default:
		return r->err_buf[0] ? r->err_buf : curl_easy_strerror(rc);
	}
}

/* Hands every request curl finished to the seam. */
static void reap(void)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(multi, &left))) {
		struct http_reply *r;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		curl_multi_remove_handle(multi, r->easy);
		if (msg->data.result == CURLE_OK) {
			curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
			http_ok++;
		} else {
			r->err = failure_of(r, msg->data.result);
			http_failed++;
		}
		http_usec += (uint64_t)(now_ms() - r->started_ms) * 1000u;
		http_inflight--;
		LIST_DEL(replies, r);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
		finished(r->ticket, r);
		reply_free(r);
	}
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_socket *s = (struct http_socket *)w;
	int flags = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running;

	(void)loop;
	curl_multi_socket_action(multi, s->fd, flags, &running);
	reap();
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	int running;

	(void)loop;
	(void)w;
	(void)revents;
	curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	reap();
}

/* CURLMOPT_SOCKETFUNCTION: watch (or stop watching) a socket for curl. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct http_socket *s = sockp;

	(void)easy;
	(void)arg;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			ev_io_stop(clock_loop, &s->io);
			curl_multi_assign(multi, fd, NULL);
			LIST_DEL(watched, s);
			free(s);
		}
		return 0;
	}
	if (!s) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		LIST_ADD(watched, s);
		curl_multi_assign(multi, fd, s);
	} else {
		ev_io_stop(clock_loop, &s->io);
	}
	ev_io_init(&s->io, on_io, fd, (what & CURL_POLL_IN ? EV_READ : 0) |
		   (what & CURL_POLL_OUT ? EV_WRITE : 0));
	ev_io_start(clock_loop, &s->io);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl's next timeout (-1: none). Zero is run from
 * the loop rather than here: curl must not be re-entered from its own
 * callback. */
static int on_timer(CURLM *m, long ms, void *arg)
{
	(void)m;
	(void)arg;
	if (ms < 0)
		timer_stop(&multi_timer);
	else
		timer_start(&multi_timer, on_timeout, (double)ms);
	return 0;
}

/* Whether `url` parses as an absolute http or https URL with a host. */
static int url_allowed(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int ok = 0;

	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	ok = (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) && host[0];
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

/* Whether `s` may go into a request line or a header: no CR, LF or NUL. */
static int clean_text(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return 0;
	return 1;
}

static int refuse(lua_State *S, const char *why)
{
	lua_pushnil(S);
	lua_pushstring(S, why);
	return 2;
}

/* http_request(method, url, headers|nil, body|nil, timeout_ms|nil, follow)
 * -> ticket | nil, err. A request refused here ("bad URL", "too many
 * requests", a bad method or header) never resumes a job. */
static int l_http_request(lua_State *S)
{
	size_t method_len, body_len = 0;
	const char *method = luaL_checklstring(S, 1, &method_len);
	const char *url = luaL_checkstring(S, 2);
	const char *body = luaL_optlstring(S, 4, NULL, &body_len);
	lua_Number timeout = luaL_optnumber(S, 5, HTTP_DEFAULT_TIMEOUT_MS);
	int follow = lua_toboolean(S, 6);
	struct http_reply *r;
	CURL *easy;

	if (!url_allowed(url))
		return refuse(S, "bad URL");
	if (method_len == 0 || method_len > 16 || !clean_text(method, method_len) ||
	    strchr(method, ' '))
		return refuse(S, "bad method");
	if (!(timeout > 0) || timeout > HTTP_MAX_TIMEOUT_MS)
		return refuse(S, "timeout_ms must be from 1 to 600000");
	if (http_inflight >= (uint64_t)settings.http_max_inflight) {
		metrics_limit("http_inflight");
		log_info("parley.http.request: %llu requests in flight (PARLEY_HTTP_MAX_INFLIGHT): %s "
			 "refused", (unsigned long long)http_inflight, url);
		return refuse(S, "too many requests in flight");
	}
	r = xcalloc(1, sizeof(*r));
	if (lua_istable(S, 3)) {
		lua_pushnil(S);
		while (lua_next(S, 3)) {
			size_t klen, vlen;
			const char *k, *v;
			char *line;

			if (lua_type(S, -2) != LUA_TSTRING || !lua_isstring(S, -1)) {
				reply_free(r);
				return refuse(S, "headers: names and values are strings");
			}
			k = lua_tolstring(S, -2, &klen);
			v = lua_tolstring(S, -1, &vlen);
			if (!klen || !clean_text(k, klen) || strchr(k, ':') || !clean_text(v, vlen)) {
				reply_free(r);
				return refuse(S, "headers: a name or value holds CR, LF, NUL or ':'");
			}
			line = xmalloc(klen + vlen + 3);
			snprintf(line, klen + vlen + 3, "%s: %s", k, v);
			r->headers = curl_slist_append(r->headers, line);
			free(line);
			lua_pop(S, 1);
		}
	}
	easy = curl_easy_init();
	if (!easy) {
		reply_free(r);
		return refuse(S, "out of memory");
	}
	r->easy = easy;
	r->ticket = tickets_new();
	r->started_ms = now_ms();
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, r);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)timeout);
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
	curl_easy_setopt(easy, CURLOPT_MAXREDIRS, (long)HTTP_MAX_REDIRECTS);
	curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)settings.http_max_response);
	curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, r->err_buf);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "parley");
	curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	if (body) {
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body);
	}
	if (r->headers)
		curl_easy_setopt(easy, CURLOPT_HTTPHEADER, r->headers);
	if (curl_multi_add_handle(multi, easy) != CURLM_OK) {
		curl_easy_cleanup(easy);
		r->easy = NULL;
		reply_free(r);
		return refuse(S, "could not start the request");
	}
	http_inflight++;
	LIST_ADD(replies, r);
	lua_pushnumber(S, (lua_Number)r->ticket);
	return 1;
}

int host_http_push(lua_State *S, const struct http_reply *r)
{
	const char *p = r->head, *end = r->head + r->head_len;

	if (r->err)
		return refuse(S, r->err);
	lua_createtable(S, 0, 3);
	lua_pushinteger(S, (lua_Integer)r->status);
	lua_setfield(S, -2, "status");
	lua_pushlstring(S, r->body ? r->body : "", r->len);
	lua_setfield(S, -2, "body");
	/* Header names in lower case; a name given twice keeps both values,
	 * joined by ", " (RFC 9110 5.3). */
	lua_newtable(S);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = eol ? eol : end, *colon, *v;
		char name[256];
		size_t nlen;

		colon = memchr(p, ':', (size_t)(line_end - p));
		if (colon && colon > p && (size_t)(colon - p) < sizeof(name)) {
			nlen = (size_t)(colon - p);
			for (size_t i = 0; i < nlen; i++)
				name[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
			v = colon + 1;
			while (v < line_end && (*v == ' ' || *v == '\t'))
				v++;
			const char *vend = line_end;
			while (vend > v && (vend[-1] == '\r' || vend[-1] == ' ' || vend[-1] == '\t'))
				vend--;
			lua_pushlstring(S, name, nlen);
			lua_pushvalue(S, -1);
			lua_rawget(S, -3);
			if (lua_isstring(S, -1)) {
				lua_pushliteral(S, ", ");
				lua_pushlstring(S, v, (size_t)(vend - v));
				lua_concat(S, 3);
			} else {
				lua_pop(S, 1);
				lua_pushlstring(S, v, (size_t)(vend - v));
			}
			lua_rawset(S, -3);
		}
		p = eol ? eol + 1 : end;
	}
	lua_setfield(S, -2, "headers");
	return 1;
}

static const luaL_Reg functions[] = {
	{ "http_request", l_http_request },
	{ NULL, NULL },
};

int host_http_register(lua_State *S, void (*on_done)(uintptr_t ticket, struct http_reply *r))
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("http: libcurl would not start");
		return -1;
	}
	multi = curl_multi_init();
	if (!multi) {
		log_error("http: libcurl would not start");
		return -1;
	}
	finished = on_done;
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
	ev_init(&multi_timer, on_timeout);
	for (size_t i = 0; i < sizeof(http_metrics) / sizeof(http_metrics[0]); i++)
		metrics_register(&http_metrics[i]);
	luaL_register(S, NULL, functions);
	return 0;
}

void host_http_fini(void)
{
	if (!multi)
		return;
	/* Requests still in flight end here, their jobs never resumed. */
	while (replies) {
		struct http_reply *r = replies;

		LIST_DEL(replies, r);
		curl_multi_remove_handle(multi, r->easy);
		curl_easy_cleanup(r->easy);
		reply_free(r);
	}
	http_inflight = 0;
	timer_stop(&multi_timer);
	curl_multi_cleanup(multi);
	multi = NULL;
	/* Sockets of the connection cache curl did not say it dropped. */
	while (watched) {
		struct http_socket *s = watched;

		LIST_DEL(watched, s);
		ev_io_stop(clock_loop, &s->io);
		free(s);
	}
	curl_global_cleanup();
}
