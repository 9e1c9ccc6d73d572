/* link.c - one connection to Redis on the libev loop (see link.h): hiredis
 * makes the non-blocking socket, formats the commands and parses the
 * replies; the watchers, the timers and the reconnect are here. */
#include "cluster/link.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"

/* The reconnect's backoff, in seconds: doubled after each failure. */
#define LINK_BACKOFF_MIN 0.1
#define LINK_BACKOFF_MAX 5.0
/* A connect that has not completed by then has failed. */
#define LINK_CONNECT_TIMEOUT 5.0
/* A PING this often; a link that read nothing for three of them is lost
 * (a peer gone without a reset, a Redis that hangs). */
#define LINK_PING_INTERVAL 3.0

enum link_state { LINK_DOWN, LINK_CONNECTING, LINK_UP };

struct link {
	struct link_addr addr;
	char name[16];
	const struct link_ops *ops;
	void *arg;
	redisContext *c;
	enum link_state state;
	int was_up;      /* up once at least: a connect now is a reconnect */
	int told_down;   /* the loss is logged: the retries that fail are not */
	ev_io rio, wio;
	ev_timer retry;  /* the next connect, after the backoff */
	ev_timer tick;   /* the connect's timeout, then the PINGs */
	double backoff;
	int64_t heard_ms; /* when the link last read something */
	char why[192];
};

static void link_connect(struct link *l);

static void stop_watchers(struct link *l)
{
	ev_io_stop(clock_loop, &l->rio);
	ev_io_stop(clock_loop, &l->wio);
	ev_timer_stop(clock_loop, &l->tick);
}

/* The connection failed or went: closed, the owner told, a reconnect
 * scheduled. `why` may be the context's own text: copied first. */
static void link_fail(struct link *l, const char *why)
{
	snprintf(l->why, sizeof(l->why), "%s", why && *why ? why : "connection lost");
	stop_watchers(l);
	if (l->c)
		redisFree(l->c);
	l->c = NULL;
	if (!l->told_down) {
		log_warn("cluster: Redis link %s %s: %s (reconnecting)", l->name,
			 l->state == LINK_UP ? "lost" : "failed", l->why);
		l->told_down = 1;
	} else {
		log_debug("cluster: Redis link %s: connect failed: %s", l->name, l->why);
	}
	l->state = LINK_DOWN;
	ev_timer_set(&l->retry, l->backoff, 0.);
	ev_timer_start(clock_loop, &l->retry);
	l->backoff *= 2;
	if (l->backoff > LINK_BACKOFF_MAX)
		l->backoff = LINK_BACKOFF_MAX;
	l->ops->on_down(l->arg, l->why);
}

static int is_pong(const redisReply *r)
{
	/* "+PONG", or ["pong", ""] once the connection has subscribed. */
	if (r->type == REDIS_REPLY_STATUS)
		return strcasecmp(r->str, "PONG") == 0;
	return r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
	       r->element[0]->type == REDIS_REPLY_STRING && strcasecmp(r->element[0]->str, "pong") == 0;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct link *l = w->data;
	void *reply;

	(void)loop;
	(void)revents;
	if (redisBufferRead(l->c) != REDIS_OK) {
		link_fail(l, l->c->errstr);
		return;
	}
	l->heard_ms = now_ms();
	for (;;) {
		if (redisGetReplyFromReader(l->c, &reply) != REDIS_OK) {
			link_fail(l, l->c->errstr);
			return;
		}
		if (!reply)
			break;
		if (!is_pong(reply))
			l->ops->on_reply(l->arg, reply);
		freeReplyObject(reply);
	}
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct link *l = w->data;
	int done = 0;

	(void)loop;
	(void)revents;
	if (redisBufferWrite(l->c, &done) != REDIS_OK) {
		link_fail(l, l->c->errstr);
		return;
	}
	if (done)
		ev_io_stop(clock_loop, &l->wio);
}

static void append(struct link *l, int argc, const char **argv, const size_t *lens)
{
	/* hiredis fails only when it cannot allocate. */
	if (redisAppendCommandArgv(l->c, argc, argv, lens) != REDIS_OK)
		alloc_fail(0);
	ev_io_start(clock_loop, &l->wio);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct link *l = w->data;
	static const char *ping[] = { "PING" };
	static const size_t ping_len[] = { 4 };

	(void)loop;
	(void)revents;
	if (l->state == LINK_CONNECTING) {
		link_fail(l, "connect timed out");
		return;
	}
	if (now_ms() - l->heard_ms > (int64_t)(3 * LINK_PING_INTERVAL * 1000)) {
		link_fail(l, "Redis did not answer a PING in time");
		return;
	}
	append(l, 1, ping, ping_len);
	ev_timer_set(&l->tick, LINK_PING_INTERVAL, 0.);
	ev_timer_start(clock_loop, &l->tick);
}

static void link_established(struct link *l)
{
	ev_io_stop(clock_loop, &l->wio);
	ev_timer_stop(clock_loop, &l->tick);
	ev_io_init(&l->rio, on_readable, l->c->fd, EV_READ);
	ev_io_init(&l->wio, on_writable, l->c->fd, EV_WRITE);
	l->rio.data = l->wio.data = l;
	ev_io_start(clock_loop, &l->rio);
	l->state = LINK_UP;
	l->backoff = LINK_BACKOFF_MIN;
	l->heard_ms = now_ms();
	ev_timer_set(&l->tick, LINK_PING_INTERVAL, 0.);
	ev_timer_start(clock_loop, &l->tick);
	if (l->was_up)
		log_warn("cluster: Redis link %s connected again", l->name);
	l->was_up = 1;
	l->told_down = 0;
	if (l->addr.db) {
		char db[16];
		const char *argv[] = { "SELECT", db };
		size_t lens[] = { 6, (size_t)snprintf(db, sizeof(db), "%d", l->addr.db) };
		append(l, 2, argv, lens);
	}
	l->ops->on_up(l->arg);
}

static void on_connect_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct link *l = w->data;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)loop;
	(void)revents;
	if (getsockopt(l->c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		link_fail(l, strerror(err));
		return;
	}
	link_established(l);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	link_connect(w->data);
}

/* A non-blocking connect: with a numeric address and a Unix socket hiredis
 * resolves nothing, so this does not wait. */
static void link_connect(struct link *l)
{
	l->c = l->addr.path[0] ? redisConnectUnixNonBlock(l->addr.path) :
				 redisConnectNonBlock(l->addr.host, l->addr.port);
	if (!l->c)
		alloc_fail(sizeof(redisContext));
	if (l->c->err) {
		link_fail(l, l->c->errstr);
		return;
	}
	l->state = LINK_CONNECTING;
	ev_io_init(&l->wio, on_connect_io, l->c->fd, EV_WRITE);
	l->wio.data = l;
	ev_io_start(clock_loop, &l->wio);
	ev_timer_set(&l->tick, LINK_CONNECT_TIMEOUT, 0.);
	ev_timer_start(clock_loop, &l->tick);
}

struct link *link_new(const struct link_addr *a, const char *name, const struct link_ops *ops,
		      void *arg)
{
	struct link *l = xcalloc(1, sizeof(*l));

	l->addr = *a;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->ops = ops;
	l->arg = arg;
	l->backoff = LINK_BACKOFF_MIN;
	ev_io_init(&l->rio, on_readable, -1, EV_READ);
	ev_io_init(&l->wio, on_writable, -1, EV_WRITE);
	ev_timer_init(&l->retry, on_retry, 0., 0.);
	ev_timer_init(&l->tick, on_tick, 0., 0.);
	l->rio.data = l->wio.data = l->retry.data = l->tick.data = l;
	link_connect(l);
	return l;
}

void link_free(struct link *l)
{
	if (!l)
		return;
	stop_watchers(l);
	ev_timer_stop(clock_loop, &l->retry);
	if (l->c)
		redisFree(l->c);
	free(l);
}

int link_is_up(const struct link *l)
{
	return l->state == LINK_UP;
}

int link_send(struct link *l, int argc, const char **argv, const size_t *lens)
{
	if (l->state != LINK_UP)
		return PARLEY_EUNAVAILABLE;
	append(l, argc, argv, lens);
	return 0;
}

size_t link_backlog(const struct link *l)
{
	return l->c && l->c->obuf ? sdslen(l->c->obuf) : 0;
}
