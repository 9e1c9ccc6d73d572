/* server.c - the app's wiring: at start it makes the loop and the lws
 * context, sets up each layer with what it needs (the HTTP routes for
 * net/http.c, the WebSocket handler for ws.c from the routes and the
 * connections), and listens; it runs the loop, and between iterations
 * writes what the iteration queued, frees what closed, reloads the scripts
 * on SIGHUP and moves the drain on after SIGTERM. lws runs on our libev
 * loop (base/clock.c). */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include <ev.h>
#include <libwebsockets.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/settings.h"
#include "config.h"
#include "hub/client.h"
#include "hub/recovery.h"
#include "lua/script.h"
#include "net/conn.h"
#include "net/files.h"
#include "net/http.h"
#include "net/peers.h"
#include "net/scrape.h"
#include "net/ws.h"
#include "proto/api.h"
#include "proto/engine.h"
#include "proto/route.h"
#include "store/pg.h"
#include "store/store.h"

/* The app's own state: the lws context, and what a signal handler asks. */
static struct {
	struct lws_context *ctx;
	volatile sig_atomic_t reload_requested;
} srv;

/* What the WebSockets report: the routes choose and open, the connection
 * that owns one takes the rest. */
static const struct ws_handler ws_handler = {
	.check = route_ws_check,
	.open = route_ws_open,
	.message = conn_ws_message,
	.writable = conn_ws_writable,
	.closed = conn_ws_closed,
	.pong = conn_ws_pong,
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

/* ---- the drain: what SIGTERM (or SIGINT) starts ----
 * 1. settle: the listen socket closes (a new connection is refused by the
 *    kernel; see drain_listening for polling); client events, new sessions,
 *    upgrades and API requests get 503 "the server is shutting down"; every
 *    connection is pinged, and its pong awaited: what the client sent before
 *    it comes first, so no event sent before the signal crosses the close
 *    unanswered; the writes already handed to the store commit, and the
 *    jobs that waited for them run, so their acks and emits are queued.
 *    Settled is when every pong came, a store barrier completes and
 *    nothing was submitted after it.
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

enum conn_filter { CONN_ANY, CONN_UNTOLD, CONN_POLLING_UNTOLD, CONN_UNANSWERED };

/* Open connections; those not told yet (a polling session whose close
 * packet a poll has taken is told); the polling ones among those. */
static size_t conn_count(enum conn_filter which)
{
	size_t n = 0;

	for (struct conn *c = conn_all(); c; c = c->all_next) {
		if (which == CONN_UNANSWERED)
			n += !conn_drain_answered(c);
		else
			n += which == CONN_ANY ||
			     (!c->close_sent && (which == CONN_UNTOLD ||
						 c->transport == TRANSPORT_POLLING));
	}
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

	/* On PostgreSQL a job resumed by an answer runs inside that answer's
	 * callback, so what it writes is queued before the next check: the
	 * store has settled once nothing is queued or in flight. */
	if (settings.store)
		return pg_pending() == 0;
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
	int budget = settings.shutdown_timeout_ms;

	switch (drain.step) {
	case DRAIN_OFF:
		log_info("stopping: new connections are refused; waiting for the store, then "
			 "closing %zu connections (PARLEY_SHUTDOWN_TIMEOUT %d ms)",
			 conn_count(CONN_ANY), budget);
		life.draining = 1;
		drain.started = now_ms();
		drain_listening();
		if (!settings.store)
			drain.barrier = store_submit(store_batch_new(), on_drain_barrier, NULL);
		/* Events a client sent before it could know are on their way:
		 * each connection's pong comes after them (conn_drain_ping). */
		for (struct conn *c = conn_all(); c; c = c->all_next)
			conn_drain_ping(c);
		drain.step = DRAIN_SETTLE;
		/* Two thirds to settle, the rest for the closing handshakes. */
		timer_start(&drain.timer, on_drain_timer, budget * 2 / 3);
		return 0;
	case DRAIN_SETTLE:
		drain_listening();
		/* The pongs first: what arrives before them may write. */
		if (!drain.expired && (conn_count(CONN_UNANSWERED) || !drain_settled()))
			return 0;
		if (drain.expired && conn_count(CONN_UNANSWERED))
			log_warn("stopping: %zu connections did not answer the drain's ping within "
				 "PARLEY_SHUTDOWN_TIMEOUT: closing the connections anyway",
				 conn_count(CONN_UNANSWERED));
		else if (drain.expired)
			log_warn("stopping: the store did not settle within PARLEY_SHUTDOWN_TIMEOUT: "
				 "closing the connections anyway");
		drain.expired = 0;
		drain.step = DRAIN_CLOSE;
		timer_start(&drain.timer, on_drain_timer, budget - budget * 2 / 3);
		drain.polling_told = conn_count(CONN_POLLING_UNTOLD);
		for (struct conn *c = conn_all(), *next; c; c = next) {
			next = c->all_next;
			conn_shutdown(c);
		}
		return 0;
	case DRAIN_CLOSE:
		drain_listening();
		if (!conn_count(CONN_UNTOLD) && !ws_open_count() && !api_pending() &&
		    !ws_is_listening()) {
			timer_stop(&drain.timer);
			log_info("stopping: every client told, in %lld ms",
				 (long long)(now_ms() - drain.started));
			return 1;
		}
		if (!drain.expired)
			return 0;
		log_warn("stopping: %zu connections, %u WebSockets and %zu API requests left "
			 "after PARLEY_SHUTDOWN_TIMEOUT: closing them", conn_count(CONN_UNTOLD), ws_open_count(),
			 api_pending());
		return 1;
	}
	return 1;
}

/* SIGHUP, or a change of a script or the config file: the settings are
 * read again (config_reload applies what may change and names what may
 * not), then the scripts load with them. A broken config file keeps
 * everything as it runs, and counts as a refused load. */
static void server_reload(void)
{
	char err[512];

	if (config_reload(&settings, err, sizeof(err)) != 0) {
		log_error("reload refused: %s", err);
		script_loads_refused++;
		return;
	}
	log_threshold = (enum log_level)settings.log_level;
	if (script_reload() == 0)
		log_info("scripts reloaded");
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
	stop = life.stopping && drain_advance();
	conn_flush();
	conn_reap();
	if (srv.reload_requested) {
		srv.reload_requested = 0;
		/* The scripts that ran are the ones that drain: their shutdown
		 * hooks write what they kept in memory. */
		if (life.stopping)
			log_warn("reload ignored: parley is shutting down");
		else
			server_reload();
	}
	/* Last: no read transaction is held while the loop waits. */
	store_read_done();
	if (stop)
		ev_break(l, EVBREAK_ALL);
}

int server_start(void)
{
	const struct config *cfg = &settings;
	struct lws_context_creation_info info;
	void *loops[1];
	int rc;

	route_init();
	engine_init();
	client_init();
	api_init();
	http_init(route_http);
	peers_init(cfg->max_conns_per_ip);
	lws_set_log_level(LLL_ERR | LLL_WARN, on_lws_log);

	if ((rc = clock_init()) < 0)
		return rc;
	ev_prepare_init(&between_iterations, on_between_iterations);
	ev_prepare_start(clock_loop, &between_iterations);
	loops[0] = clock_loop;

	memset(&info, 0, sizeof(info));
	/* parley listens and accepts (ws.c); lws gets the HTTP connections. */
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = http_protocols();
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
		/* Named so that lws asks our handler for extra headers
		 * (LWS_CALLBACK_ADD_HEADERS: "connection: close", http.c). */
		static_mount.protocol = http_protocols()[0].name;
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
		/* lws says no more than that: memory, or its libev plugin. */
		log_error("cannot create the lws context");
		return -ENOMEM;
	}
	if (cfg->static_mount)
		files_init(srv.ctx, static_mount.origin);
	if ((rc = ws_listen(cfg->bind, cfg->port, &ws_handler, srv.ctx)) < 0)
		return rc;
	if (cfg->metrics_addr)
		return scrape_start(cfg->metrics_addr);
	return 0;
}

void server_run(void)
{
	if (!life.stopping)
		ev_run(clock_loop, 0);
}

void server_loop_fini(void)
{
	if (clock_loop) {
		timer_stop(&drain.timer);
		timer_stop(&drain.linger);
		ev_prepare_stop(clock_loop, &between_iterations);
		clock_fini();
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
	life.stopping = 1;
	if (srv.ctx)
		lws_cancel_service(srv.ctx);
}

void server_fini(void)
{
	/* Sessions between polls have no socket for lws to close: close every
	 * connection here (their scripts' disconnect hooks run), then let the
	 * context close the sockets. */
	conn_close_all("server shutdown");
	/* Sockets held for a recovery end too, before the scripts' shutdown. */
	recovery_end_all("server shutdown");
	scrape_stop();
	ws_fini();
	if (srv.ctx)
		lws_context_destroy(srv.ctx);
	srv.ctx = NULL;
	conn_fini();
	api_fini();
	peers_fini();
	engine_fini();
	client_fini();
}
