/* scrape.c - /metrics on an address of its own (PARLEY_METRICS_ADDR), so
 * that Prometheus scrapes on a private interface while the main port faces
 * clients. Each connection: one request head (at most SCRAPE_HEAD_MAX bytes,
 * within SCRAPE_TIMEOUT_MS), answered (GET /metrics: the text; anything
 * else: 404) and closed. On the loop, never blocking; uses base/metrics. */
#define _GNU_SOURCE
#include "net/scrape.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "net/ws.h"

#define SCRAPE_HEAD_MAX 4096
#define SCRAPE_TIMEOUT_MS 5000
/* Scrapers at once: more are closed at accept (a scraper is one or two). */
#define SCRAPE_CONNS_MAX 32

struct scrape {
	ev_io io;
	ev_timer timer;
	int fd;
	char head[SCRAPE_HEAD_MAX];
	size_t head_len;
	char *out;       /* the whole answer, once the head is read */
	size_t out_len, out_sent;
	struct scrape *prev, *next;
};

static int listen_fd = -1;
static ev_io listen_io;
static struct scrape *all;
static int nconns;

static void scrape_close(struct scrape *s)
{
	ev_io_stop(clock_loop, &s->io);
	timer_stop(&s->timer);
	close(s->fd);
	if (s->prev)
		s->prev->next = s->next;
	else
		all = s->next;
	if (s->next)
		s->next->prev = s->prev;
	nconns--;
	free(s->out);
	free(s);
}

static void on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct scrape *s = (struct scrape *)((char *)t - offsetof(struct scrape, timer));

	(void)loop;
	(void)revents;
	scrape_close(s);
}

/* The answer to a complete head: the metrics for GET /metrics, else 404. */
static void answer(struct scrape *s)
{
	static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
				 "Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n";
	const char *h = s->head;
	size_t len;
	char *text, head[160];
	int n;

	if (strncmp(h, "GET /metrics ", 13) != 0 && strncmp(h, "GET /metrics?", 13) != 0) {
		metrics_http_error(404);
		s->out = xstrndup(nf, sizeof(nf) - 1);
		s->out_len = sizeof(nf) - 1;
		return;
	}
	text = metrics_render(&len);
	n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
		     "version=0.0.4\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", len);
	s->out = xmalloc((size_t)n + len);
	memcpy(s->out, head, (size_t)n);
	memcpy(s->out + n, text, len);
	s->out_len = (size_t)n + len;
	free(text);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct scrape *s = (struct scrape *)w;
	ssize_t n;

	(void)loop;
	(void)revents;
	if (!s->out) {
		n = read(s->fd, s->head + s->head_len, sizeof(s->head) - 1 - s->head_len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			scrape_close(s);
			return;
		}
		s->head_len += (size_t)n;
		s->head[s->head_len] = '\0';
		if (!strstr(s->head, "\r\n\r\n")) {
			if (s->head_len == sizeof(s->head) - 1) {
				metrics_http_error(431);
				scrape_close(s);
			}
			return;
		}
		answer(s);
		ev_io_stop(clock_loop, &s->io);
		ev_io_set(&s->io, s->fd, EV_WRITE);
		ev_io_start(clock_loop, &s->io);
	}
	n = send(s->fd, s->out + s->out_sent, s->out_len - s->out_sent, MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		scrape_close(s);
		return;
	}
	s->out_sent += (size_t)n;
	if (s->out_sent == s->out_len)
		scrape_close(s);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct scrape *s;

		if (fd < 0)
			return;
		if (nconns >= SCRAPE_CONNS_MAX) {
			metrics_limit("scrape_connections");
			close(fd);
			continue;
		}
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->next = all;
		if (all)
			all->prev = s;
		all = s;
		nconns++;
		ev_io_init(&s->io, on_io, fd, EV_READ);
		ev_io_start(clock_loop, &s->io);
		timer_start(&s->timer, on_timeout, SCRAPE_TIMEOUT_MS);
	}
}

int scrape_start(const char *addr_port)
{
	const char *colon = strrchr(addr_port, ':');
	char host[64];
	char *end;
	long port;
	size_t hlen;
	int fd;

	if (!colon || colon == addr_port || (hlen = (size_t)(colon - addr_port)) >= sizeof(host)) {
		log_error("PARLEY_METRICS_ADDR %s: expected address:port, e.g. 127.0.0.1:9100",
			  addr_port);
		return -EINVAL;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 1 || port > 65535) {
		log_error("PARLEY_METRICS_ADDR %s: the port must be 1..65535", addr_port);
		return -EINVAL;
	}
	memcpy(host, addr_port, hlen);
	host[hlen] = '\0';
	fd = ws_bind(host, (int)port);
	if (fd < 0)
		return fd;
	listen_fd = fd;
	ev_io_init(&listen_io, on_accept, fd, EV_READ);
	ev_io_start(clock_loop, &listen_io);
	log_info("metrics on %s (/metrics)", addr_port);
	return 0;
}

void scrape_stop(void)
{
	while (all)
		scrape_close(all);
	if (listen_fd < 0)
		return;
	ev_io_stop(clock_loop, &listen_io);
	close(listen_fd);
	listen_fd = -1;
}
