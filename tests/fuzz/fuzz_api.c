/* fuzz_api.c - the HTTP API end to end, in one process: the real server
 * (lws's HTTP parser, api.c, the Lua runtime's router, the default scripts'
 * routes, the LMDB store in a scratch directory) is started once, and each
 * input becomes one request over loopback, the driver pumping the server's
 * loop until the answer is read. The input is a method and a framing (first
 * byte), a path below /api/ (to the first newline; bytes a request line
 * cannot carry are percent-encoded) and a JSON body (the rest).
 *
 * Every request must be answered, within 5 s, with a status that is not a
 * server error (507, the store full, excepted), and an error's JSON body
 * must carry a message. A 500 means a route's script failed on the input:
 * a finding. A request framed as no client should (first byte 0xc0 and
 * up: Transfer-Encoding, two lengths, ...) is sent on a kept-alive
 * connection with a second request behind it: it must get one answer, a
 * 4xx (400 or 411, or lws's own refusal of the request line), and the
 * connection closed (the second never answered: it could have been
 * smuggled). */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "config.h"
#include "net/http.h"
#include "wire/json.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/map.h"
#include "store/messages.h"
#include "lua/script.h"
#include "server.h"
#include "store/store.h"

#ifndef PARLEY_SOURCE_DIR
#define PARLEY_SOURCE_DIR "."
#endif

#define KEY "fuzz-key"
#define MAX_PATH 2048
#define DEADLINE_MS 5000

static int port;
static char data_dir[] = "/tmp/parley-fuzz-api.XXXXXX";

/* The scratch store goes with the process (the replay runs on every ctest). */
static void remove_data_dir(void)
{
	static const char *const files[] = { "data.mdb", "lock.mdb" };
	char path[sizeof(data_dir) + 16];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", data_dir, files[i]);
		unlink(path);
	}
	rmdir(data_dir);
}

static void setup(void)
{
	char *argv[] = { "fuzz_api", NULL };
	char err[512], portbuf[16];

	if (!mkdtemp(data_dir))
		abort();
	atexit(remove_data_dir);
	/* Below the ephemeral range (32768-60999): a client's port there, in
	 * TIME_WAIT after an earlier test, would make the listen fail. */
	port = 20000 + getpid() % 12000;
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	setenv("PORT", portbuf, 1);
	setenv("PARLEY_DATA_DIR", data_dir, 1);
	setenv("PARLEY_MAP_SIZE", "67108864", 1); /* small: a full store is a case too */
	setenv("PARLEY_API_KEY", KEY, 1);
	setenv("PARLEY_SCRIPTS", PARLEY_SOURCE_DIR "/scripts", 1);
	setenv("PARLEY_WATCH", "0", 1);
	setenv("PARLEY_LOG", "error", 1);
	unsetenv("PARLEY_CONFIG"); /* and no parley.conf.lua where it runs */
	if (config_load(&settings, 1, argv, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_api: %s\n", err);
		abort();
	}
	log_threshold = (enum log_level)settings.log_level;
	map_seed();
	signal(SIGPIPE, SIG_IGN);
	if (store_claim(settings.data_dir) < 0 || server_start() < 0 ||
	    store_open(settings.data_dir, settings.map_size, clock_loop) < 0 || messages_init() < 0 ||
	    script_init(NULL) < 0) {
		fprintf(stderr, "fuzz_api: the server did not start\n");
		abort();
	}
}

/* How the body is framed: the first byte, below 0xc0 a plain Content-Length
 * (the corpus from before these), from 0xc0 on (byte - 0xc0) / 5 % FRAMINGS. */
enum framing {
	FRAME_LENGTH,            /* Content-Length */
	FRAME_LENGTH_AND_CHUNKED, /* and Transfer-Encoding: chunked, body chunked */
	FRAME_CHUNKED,           /* Transfer-Encoding: chunked alone */
	FRAME_TWO_LENGTHS,       /* Content-Length: 0, then the real one */
	FRAME_NO_LENGTH,         /* none (a POST, PUT or PATCH must have one) */
	FRAME_BAD_LENGTH,        /* "<n>x" */
	FRAME_PIPELINED,         /* a plain request, behind a GET /healthz in one write */
	FRAMINGS
};

/* What follows a badly framed request in the same write. */
static const char smuggled[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

static const char *method_of(const uint8_t *data)
{
	static const char *const methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE" };

	return methods[data[0] % 5];
}

static enum framing framing_of(const uint8_t *data)
{
	return data[0] < 0xc0 ? FRAME_LENGTH : (enum framing)((data[0] - 0xc0) / 5 % FRAMINGS);
}

/* Whether the framing is one parley must refuse (400 or 411, then close). */
static int framing_refused(enum framing f, const char *method)
{
	int body_method = strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0;

	return f == FRAME_LENGTH_AND_CHUNKED || f == FRAME_CHUNKED || f == FRAME_TWO_LENGTHS ||
	       f == FRAME_BAD_LENGTH || (f == FRAME_NO_LENGTH && body_method);
}

/* Builds the request for `data` into `out`; returns its length, and in
 * `line` where its request line starts. */
static size_t build_request(const uint8_t *data, size_t size, char *out, size_t cap,
			    const char **line)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *method = method_of(data);
	enum framing f = framing_of(data);
	const uint8_t *p = data + 1, *end = data + size;
	const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
	const uint8_t *path_end = nl ? nl : end;
	const uint8_t *body = nl ? nl + 1 : end;
	size_t body_len = (size_t)(end - body), n;
	char path[3 * MAX_PATH + 1];
	size_t plen = 0;

	for (const uint8_t *q = p; q < path_end && plen < 3 * MAX_PATH - 3; q++) {
		if (*q > 0x20 && *q < 0x7f) {
			path[plen++] = (char)*q;
		} else {
			path[plen++] = '%';
			path[plen++] = hex[*q >> 4];
			path[plen++] = hex[*q & 15];
		}
	}
	path[plen] = '\0';
	n = 0;
	if (f == FRAME_PIPELINED)
		n = (size_t)snprintf(out, cap, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	*line = out + n;
	n += (size_t)snprintf(out + n, cap - n,
			      "%s /api/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			      "Authorization: Bearer " KEY "\r\n%s"
			      "Content-Type: application/json\r\n",
			      method, path, framing_refused(f, method) ? "" : "Connection: close\r\n");
	if (f == FRAME_LENGTH_AND_CHUNKED || f == FRAME_CHUNKED)
		n += (size_t)snprintf(out + n, cap - n, "Transfer-Encoding: chunked\r\n");
	if (f == FRAME_TWO_LENGTHS)
		n += (size_t)snprintf(out + n, cap - n, "Content-Length: 0\r\n");
	if (f == FRAME_BAD_LENGTH)
		n += (size_t)snprintf(out + n, cap - n, "Content-Length: %zux\r\n", body_len);
	else if (f != FRAME_CHUNKED && f != FRAME_NO_LENGTH)
		n += (size_t)snprintf(out + n, cap - n, "Content-Length: %zu\r\n", body_len);
	n += (size_t)snprintf(out + n, cap - n, "\r\n");
	if (f == FRAME_NO_LENGTH)
		body_len = 0; /* for a GET or DELETE, what follows would be a request */
	if (n + body_len + 32 + sizeof(smuggled) > cap)
		abort();
	if (f == FRAME_LENGTH_AND_CHUNKED || f == FRAME_CHUNKED)
		n += (size_t)snprintf(out + n, cap - n, "%zx\r\n", body_len);
	memcpy(out + n, body, body_len);
	n += body_len;
	if (f == FRAME_LENGTH_AND_CHUNKED || f == FRAME_CHUNKED)
		n += (size_t)snprintf(out + n, cap - n, "\r\n0\r\n\r\n");
	if (framing_refused(f, method)) {
		memcpy(out + n, smuggled, sizeof(smuggled) - 1);
		n += sizeof(smuggled) - 1;
	}
	return n;
}

/* Where the response after the one at `p` starts (its head, then as many
 * bytes as its Content-Length), or NULL when none follows. A body may hold
 * "HTTP/1." (a 404 echoes the path). */
static const char *next_answer(const char *p, const char *end)
{
	const char *head_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
	const char *cl = memmem(p, (size_t)(end - p), "content-length:", 15);

	if (!head_end || !cl || cl > head_end)
		return NULL;
	p = head_end + 4 + strtoul(cl + 15, NULL, 10);
	return p < end && strncmp(p, "HTTP/1.", 7) == 0 ? p : NULL;
}

/* The responses in `resp` (lws's own refusals say HTTP/1.0). */
static int count_answers(const char *resp, size_t len)
{
	int n = strncmp(resp, "HTTP/1.", 7) == 0;

	for (const char *p = resp; n && (p = next_answer(p, resp + len));)
		n++;
	return n;
}

/* Request lines lws 4.1 answers by closing the connection, before parley
 * sees the request: a URI carrying %00, more than 88 argument separators
 * ('&' or ';': its table of header fragments is full; the driver skips
 * past 80, a margin), or a URI that with the headers overflows the header
 * space parley gives lws (LWS_QUERY_FRAGMENT_MAX; the driver's headers take
 * under 100 bytes of it). No answer to check. */
static int lws_drops(const char *line, size_t len)
{
	size_t separators = 0;

	if (len > LWS_QUERY_FRAGMENT_MAX - 200 || memmem(line, len, "%00", 3))
		return 1;
	for (size_t i = 0; i < len; i++)
		separators += line[i] == '&' || line[i] == ';';
	return separators > 80;
}

/* Sends the request and pumps the server until it has answered and closed;
 * returns the answer's length in `resp`. */
static size_t exchange(const char *req, size_t len, char *resp, size_t cap)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	size_t sent = 0, got = 0;
	int64_t deadline = now_ms() + DEADLINE_MS;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS))
		abort();
	for (;;) {
		ev_run(clock_loop, EVRUN_NOWAIT);
		if (sent < len) {
			ssize_t w = send(fd, req + sent, len - sent, 0);
			if (w > 0)
				sent += (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != ENOTCONN)
				sent = len; /* the server closed early: read what it said */
		}
		ssize_t r = recv(fd, resp + got, cap - got - 1, 0);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			break;
		if (r > 0) {
			got += (size_t)r;
			if (got == cap - 1)
				break;
		}
		if (now_ms() > deadline) {
			fprintf(stderr, "fuzz_api: no answer within %d ms to:\n%.*s\n", DEADLINE_MS,
				(int)(len > 400 ? 400 : len), req);
			abort();
		}
	}
	close(fd);
	resp[got] = '\0';
	return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char req[1 << 17], resp[1 << 17];
	const char *line, *body, *answer = resp;
	size_t len, n;
	int status, answers;

	if (!clock_loop)
		setup();
	if (size < 1 || size > 65536)
		return 0;
	len = build_request(data, size, req, sizeof(req), &line);
	if (lws_drops(line, (size_t)(strchr(line, '\r') - line)))
		return 0;
	n = exchange(req, len, resp, sizeof(resp));
	if (n < 12 || sscanf(resp, "HTTP/1.%*c %d", &status) != 1) {
		fprintf(stderr, "fuzz_api: no status line in %zu bytes:\n%.200s\n", n, resp);
		abort();
	}
	answers = count_answers(resp, n);
	/* 400 or 411 from parley; lws refuses some request lines itself (a 403
	 * for a path it will not take), before parley sees them: closed too. */
	if (framing_refused(framing_of(data), method_of(data)) &&
	    (status < 400 || status > 499 || answers != 1)) {
		fprintf(stderr, "fuzz_api: a badly framed request got %d answers, the first %d:\n"
			"%.*s\n---\n%.600s\n", answers, status, (int)(len > 600 ? 600 : len), req, resp);
		abort();
	}
	if (framing_of(data) == FRAME_PIPELINED) {
		/* The GET, then the request: answered (a 400 and the connection
		 * closed if it has a body: lws 4.1.6 cannot take one pipelined,
		 * server.c's on_http_body). */
		const char *second = next_answer(resp, resp + n);
		if (answers > 2 || (second && sscanf(second, "HTTP/1.%*c %d", &status) != 1)) {
			fprintf(stderr, "fuzz_api: %d answers to a pipelined pair:\n%.600s\n", answers, resp);
			abort();
		}
		if (!second)
			return 0;
		answer = second;
	}
	if (getenv("FUZZ_API_TRACE"))
		fprintf(stderr, "%.*s -> %d\n", (int)(strchr(line, '\r') - line), line, status);
	if (status >= 500 && status != 507) {
		fprintf(stderr, "fuzz_api: %d for:\n%.*s\n---\n%s\n", status,
			(int)(len > 600 ? 600 : len), req, resp);
		abort();
	}
	body = strstr(answer, "\r\n\r\n");
	if (status >= 400 && body && strstr(answer, "application/json")) {
		body += 4;
		if (json_validate(body, strlen(body), 32) != JSON_OBJECT || !strstr(body, "\"message\"")) {
			fprintf(stderr, "fuzz_api: error %d without a JSON message:\n%s\n", status, resp);
			abort();
		}
	}
	return 0;
}
