/* loadgen.c - parley's load generator: N Socket.IO clients over the raw
 * WebSocket transport (Engine.IO v4 / Socket.IO v5, namespace /messages) in
 * one epoll loop, joined in rooms of K, driving one of the benchmark modes:
 *
 *   idle     connect rate, and the server's memory per idle connection
 *   fanout   bench:send with at most W unacked per sender, maximum throughput
 *   latency  bench:send at a fixed total rate; delivery latency percentiles
 *   send     message:send (durable in parley) acks per second
 *   typing   typing:start relays per second
 *   noop     bench:noop acks per second: an event whose handler does nothing
 *
 * The clients may be spread over several servers (--port A,B: the nodes
 * of a cluster), and the deliveries that crossed from one to another are
 * counted and timed apart; --event send makes the latency mode's paced
 * sends durable message:send.
 *
 * Every expected delivery is counted and losses are reported. Output: one
 * `RESULT key=value ...` line for scripts and one human line. libc + Linux
 * epoll/timerfd only; the WebSocket pieces are in wsproto.c. Built in the
 * tree, --parser msgpack speaks socket.io-msgpack-parser's binary packets
 * instead, made from and read back into the text ones by parley's codec
 * (wire/sio_msgpack.c: the servers decode them on their own). With zlib,
 * --deflate offers permessage-deflate (RFC 7692) with no context takeover
 * either way, as parley agrees to it: messages the server sends compressed
 * are inflated, and the loadgen's own messages of 1 KB or more are
 * compressed, as socket.io's and a browser's are. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "wsproto.h"
#ifdef LOADGEN_DEFLATE
#include <zlib.h>
#endif
#ifdef LOADGEN_MSGPACK
#include "wire/sio_msgpack.h"
#endif

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define NS_PER_S 1000000000ULL
#define TIMER_TOKEN UINT32_MAX
#define MAX_MESSAGE (64u << 20) /* a server frame above this is a protocol error */
#define JOIN_ACK_ID 0

enum mode { MODE_IDLE, MODE_FANOUT, MODE_LATENCY, MODE_SEND, MODE_TYPING, MODE_NOOP };
static const char *const mode_names[] = { "idle", "fanout", "latency", "send", "typing", "noop" };

enum state {
	ST_CONNECTING, /* socket being set up */
	ST_HTTP,       /* connecting; upgrade request queued or sent, waiting for the 101 */
	ST_WS,         /* WebSocket open, waiting for the Engine.IO open packet */
	ST_SIO,        /* Socket.IO CONNECT sent, waiting for its answer */
	ST_CONNECTED,  /* connected to /messages, not in a room yet */
	ST_JOINING,    /* conversation:join sent, waiting for its ack */
	ST_READY,      /* in its room */
	ST_CLOSED,
};

struct client {
	int fd;
	uint32_t idx;
	uint8_t state;
	uint8_t pollout; /* EPOLLOUT is registered */
	uint8_t dirty;   /* on the flush list */
	uint8_t frag_op; /* opcode of a fragmented message being reassembled */
	uint8_t frag_z;  /* ... and whether it is compressed */
	uint8_t node;    /* which of --port's servers it connects to */
	uint32_t room;
	char accept[29]; /* the Sec-WebSocket-Accept the server must answer */
	uint8_t *rbuf;   /* bytes of an incomplete frame (or HTTP head) */
	uint32_t rlen, rcap;
	uint8_t *wbuf; /* bytes not yet written */
	uint32_t wlen, woff, wcap;
	uint8_t *frag; /* a fragmented message being reassembled */
	uint32_t frag_len, frag_cap;
	/* As a sender. */
	uint32_t inflight;
	uint32_t next_ack;
	uint64_t seq;
};

#define MAX_PORTS 4
#define MAX_PIDS 4

struct options {
	enum mode mode;
	int port;              /* the first of ports */
	int ports[MAX_PORTS];  /* --port A,B: client i connects to ports[i % n_ports] */
	int n_ports;
	int clients;
	int room;
	int senders;
	int window;
	double rate;
	double duration;
	double warmup;
	double hold;
	double drain;
	int concurrency;
	int pad;
	int sources;
	int users;
	const char *prefix; /* before every user id and room name */
	int server_pid;               /* the first of server_pids: RSS and threads */
	int server_pids[MAX_PIDS];    /* --server-pid A,B: CPU added up */
	int n_server_pids;
	int db_pid; /* --db-pid: a database's main process; its CPU and its children's */
	int redis_pid;              /* --redis-pid: its CPU over the window */
	const char *redis_sock;     /* --redis-sock: its INFO stats over the window */
	int cluster_metrics;        /* --cluster-metrics: parley_cluster_* of every port */
	int durable;                /* --event send: latency mode sends message:send */
	int undelivered;            /* --undelivered: no send while this many deliveries are due */
	const char *label;
	int verbose;
	int msgpack; /* --parser msgpack */
	int deflate; /* --deflate: permessage-deflate */
};

/* Latency histogram: 1 µs buckets up to 100 ms, then 100 µs buckets up to 10 s. */
#define HIST_FINE 100000
#define HIST_COARSE 100000
struct histogram {
	uint32_t fine[HIST_FINE];
	uint32_t coarse[HIST_COARSE];
	uint64_t over;
	uint64_t count;
	uint64_t max_ns;
	double sum_us;
};

static struct options opt = {
	.mode = MODE_IDLE, .port = 3000, .ports = { 3000 }, .n_ports = 1, .clients = 1000, .room = 10,
	.senders = 0,
	.window = 8, .rate = 2000, .duration = 10, .warmup = 1, .hold = 2, .drain = 5,
	.concurrency = 200, .pad = 0, .sources = 250, .users = 0, .server_pid = 0, .label = "server", .prefix = "",
};

static struct client *clients;
static int ep;
static int timer_fd = -1;
static uint32_t *dirty_list;
static uint32_t dirty_count;
static uint8_t *sbuf; /* the shared read buffer */
static size_t sbuf_cap;
static uint64_t t_start;
static uint64_t rng_state;
static struct histogram *hist;
static struct histogram *hist_remote; /* deliveries whose sender is on another port */

/* Counters. */
static int n_started, n_inflight_connects, n_connected, n_joined, n_failed, n_closed_late;
static uint64_t t_first_connect, t_last_connected, t_first_join, t_last_joined;
static uint64_t t_ready; /* first connect to last join ack: everything settled */
static uint64_t c_sent, c_acked, c_ack_err, c_recv, c_recv_window, c_acked_window;
static uint64_t c_sent_window; /* sends in the measured window */
static uint64_t c_other_events, c_pings, c_expected;
static uint64_t c_recv_other_names[8];
static uint64_t c_recv_remote, c_recv_remote_window; /* deliveries across servers */
static int sending;       /* the load phase is running */
static uint64_t t_load0, t_load1; /* the measured window */
static uint64_t t_lat0;   /* latency samples count from here (after the warm-up) */
static uint32_t *sender_list;
static int n_senders;
static uint32_t *room_members; /* joined members per room */
static int n_rooms;
static const char *fail_reason_first;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint64_t rng(void)
{
	/* xorshift64*: masks and handshake keys need to vary, not to be secret. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "loadgen: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q && n)
		die("out of memory (%zu bytes)", n);
	return q;
}

static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "[%7.3f] ", (double)(now_ns() - t_start) / 1e9);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

/* ---- the server process: RSS and CPU from /proc ---- */

static long server_rss_kb(void)
{
	char path[64], line[256];
	long kb = -1;
	if (!opt.server_pid)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/status", opt.server_pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

/* utime + stime in seconds from a /proc stat file (a process's: all its
 * threads; a task's: that thread), its parent's pid in *ppid and its name in
 * name[16] when not NULL; -1 if unknown. */
static double stat_cpu_s(const char *path, int *ppid, char *name)
{
	char buf[1024];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name may hold spaces: fields count from the last ')'. */
	char *p = strrchr(buf, ')');
	char *open_paren = strchr(buf, '(');
	if (!p || !open_paren || open_paren > p)
		return -1;
	if (name) {
		size_t len = (size_t)(p - open_paren - 1);
		len = len > 15 ? 15 : len;
		memcpy(name, open_paren + 1, len);
		name[len] = '\0';
		for (char *c = name; *c; c++)
			if (*c == ' ' || *c == ',' || *c == ':')
				*c = '_';
	}
	p += 2; /* field 3, the state */
	unsigned long long utime = 0, stime = 0;
	for (int field = 3; field <= 15 && *p; field++) {
		if (field == 4 && ppid)
			*ppid = atoi(p);
		if (field == 14)
			utime = strtoull(p, NULL, 10);
		if (field == 15)
			stime = strtoull(p, NULL, 10);
		p = strchr(p, ' ');
		if (!p)
			break;
		p++;
	}
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double proc_cpu_s(int pid, int *ppid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	return stat_cpu_s(path, ppid, NULL);
}

/* The servers' CPU, all their threads (the writer thread's too), added
 * up over --server-pid's processes. */
static double server_cpu_s(void)
{
	double sum = 0;
	if (!opt.n_server_pids)
		return -1;
	for (int i = 0; i < opt.n_server_pids; i++) {
		double s = proc_cpu_s(opt.server_pids[i], NULL);
		if (s < 0)
			return -1;
		sum += s;
	}
	return sum;
}

/* The server's threads over the measured window, by name (parley's loop
 * thread is "parley", its store writer "parley-store"): where a durable
 * send's CPU goes. Threads of one name are added up. */
#define MAX_THREADS 64
static struct server_thread {
	int tid;
	char name[16];
	double cpu0, cpu1;
} threads[MAX_THREADS];
static int n_threads;

/* at_end 0: lists the threads and their CPU; 1: their CPU again. */
static void threads_sample(int at_end)
{
	char path[96];
	if (!opt.server_pid)
		return;
	if (at_end) {
		for (int i = 0; i < n_threads; i++) {
			snprintf(path, sizeof path, "/proc/%d/task/%d/stat", opt.server_pid, threads[i].tid);
			threads[i].cpu1 = stat_cpu_s(path, NULL, NULL);
		}
		return;
	}
	snprintf(path, sizeof path, "/proc/%d/task", opt.server_pid);
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *e;
	n_threads = 0;
	while ((e = readdir(d)) && n_threads < MAX_THREADS) {
		int tid = atoi(e->d_name);
		if (tid <= 0)
			continue;
		struct server_thread *t = &threads[n_threads];
		snprintf(path, sizeof path, "/proc/%d/task/%d/stat", opt.server_pid, tid);
		t->tid = tid;
		t->cpu0 = stat_cpu_s(path, NULL, t->name);
		if (t->cpu0 >= 0)
			n_threads++;
	}
	closedir(d);
}

/* " thread_cpu_s=name:s,name:s" over the window; nothing when unknown. */
static void threads_print(void)
{
	int printed = 0;
	for (int i = 0; i < n_threads; i++) {
		int first = 1;
		double sum = 0;
		for (int j = 0; j < n_threads; j++) {
			if (strcmp(threads[j].name, threads[i].name) != 0)
				continue;
			if (j < i)
				first = 0;
			if (threads[j].cpu1 >= 0)
				sum += threads[j].cpu1 - threads[j].cpu0;
		}
		if (!first)
			continue;
		printf("%s%s:%.2f", printed ? "," : " thread_cpu_s=", threads[i].name, sum);
		printed = 1;
	}
}

/* The database's CPU: its main process and every process it started
 * (PostgreSQL's postmaster and its backends, writers, checkpointer), which
 * are its children; -1 without --db-pid. A backend that ends during the run
 * takes its CPU with it: the ones that matter here (the server's connection,
 * the WAL writer) live through the run. */
static double db_cpu_s(void)
{
	if (!opt.db_pid)
		return -1;
	double sum = proc_cpu_s(opt.db_pid, NULL);
	if (sum < 0)
		return -1;
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		int pid = atoi(e->d_name), ppid = 0;
		if (pid <= 0 || pid == opt.db_pid)
			continue;
		double s = proc_cpu_s(pid, &ppid);
		if (s >= 0 && ppid == opt.db_pid)
			sum += s;
	}
	closedir(d);
	return sum;
}

static double self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- a cluster's figures over the window: Redis and the nodes ---- */

/* What Redis and the nodes' parley_cluster_* counters say at one moment;
 * the report gives the differences over the measured window. Read with
 * blocking calls of a few hundred µs, once at each end of the window. */
struct probe {
	double redis_cpu;
	long long redis_in, redis_out, redis_cmds;
	long long published, received, cluster_deliveries;
};
static struct probe probe0, probe1;

/* The value after "name" at the start of a line of text[0..len); -1. */
static long long line_value(const char *text, size_t len, const char *name)
{
	size_t nl = strlen(name);
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
		if (ll > nl && memcmp(p, name, nl) == 0)
			return (long long)strtod(p + nl, NULL);
		p = eol ? eol + 1 : end;
	}
	return -1;
}

/* Reads from fd until the peer closes, up to cap - 1 bytes; the length. */
static size_t read_all(int fd, char *buf, size_t cap)
{
	size_t have = 0;
	while (have < cap - 1) {
		ssize_t n = read(fd, buf + have, cap - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	buf[have] = '\0';
	return have;
}

static int connect_blocking(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return connect(fd, sa, len);
}

/* INFO stats from --redis-sock: bytes in and out, commands. Its own
 * reply (about 1.5 KB) falls into the next sample's output bytes. */
static void probe_redis(struct probe *pr)
{
	static char reply[16384];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	pr->redis_in = pr->redis_out = pr->redis_cmds = -1;
	if (!opt.redis_sock || strlen(opt.redis_sock) >= sizeof sa.sun_path)
		return;
	memcpy(sa.sun_path, opt.redis_sock, strlen(opt.redis_sock) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	/* QUIT after INFO: Redis closes the connection, which ends the read. */
	static const char req[] = "INFO stats\r\nQUIT\r\n";
	if (connect_blocking(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
	    write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1)) {
		size_t n = read_all(fd, reply, sizeof reply);
		pr->redis_in = line_value(reply, n, "total_net_input_bytes:");
		pr->redis_out = line_value(reply, n, "total_net_output_bytes:");
		pr->redis_cmds = line_value(reply, n, "total_commands_processed:");
	}
	close(fd);
}

/* parley_cluster_* from every port's /metrics, added up. */
static void probe_nodes(struct probe *pr)
{
	static char reply[1 << 20];
	pr->published = pr->received = pr->cluster_deliveries = 0;
	for (int i = 0; i < opt.n_ports; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt.ports[i]) };
		sa.sin_addr.s_addr = htonl(0x7F000001u);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket: %s", strerror(errno));
		char req[128];
		int rl = snprintf(req, sizeof req, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
				  "Connection: close\r\n\r\n", opt.ports[i]);
		size_t n = 0;
		if (connect_blocking(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
		    write(fd, req, (size_t)rl) == rl)
			n = read_all(fd, reply, sizeof reply);
		close(fd);
		long long pub = line_value(reply, n, "parley_cluster_published_total ");
		long long rcv = line_value(reply, n, "parley_cluster_received_total ");
		long long del = line_value(reply, n, "parley_cluster_deliveries_total ");
		if (pub < 0 || rcv < 0 || del < 0)
			die("--cluster-metrics: no parley_cluster_* in port %d's /metrics (%zu bytes): "
			    "is it in cluster mode?", opt.ports[i], n);
		pr->published += pub;
		pr->received += rcv;
		pr->cluster_deliveries += del;
	}
}

static void probe_sample(struct probe *pr)
{
	pr->redis_cpu = opt.redis_pid ? proc_cpu_s(opt.redis_pid, NULL) : -1;
	probe_redis(pr);
	if (opt.cluster_metrics)
		probe_nodes(pr);
}

/* ---- output buffers ---- */

static void mark_dirty(struct client *c)
{
	if (!c->dirty) {
		c->dirty = 1;
		dirty_list[dirty_count++] = c->idx;
	}
}

static uint8_t *wb_reserve(struct client *c, size_t n)
{
	if (c->woff && c->woff == c->wlen)
		c->woff = c->wlen = 0;
	if (c->wlen + n > c->wcap) {
		if (c->woff) {
			memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
			c->wlen -= c->woff;
			c->woff = 0;
		}
		if (c->wlen + n > c->wcap) {
			size_t cap = c->wcap ? c->wcap : 256;
			while (cap < c->wlen + n)
				cap *= 2;
			c->wbuf = xrealloc(c->wbuf, cap);
			c->wcap = (uint32_t)cap;
		}
	}
	return c->wbuf + c->wlen;
}

#ifdef LOADGEN_DEFLATE
/* --deflate: one stream each way serves every client (no context
 * takeover: each message is compressed on its own). */
static z_stream zdef, zinf;
static uint8_t *zbuf; /* a message inflated or compressed */
static size_t zbuf_cap;
static uint64_t c_inflated, c_deflated; /* messages */

static uint8_t *zbuf_room(size_t n)
{
	if (zbuf_cap < n) {
		zbuf_cap = n * 2;
		zbuf = xrealloc(zbuf, zbuf_cap);
	}
	return zbuf;
}

/* The compressed form of a message (RFC 7692 §7.2.1: the stream's trailing
 * 00 00 ff ff left off), in zbuf. */
static size_t deflate_message(const void *p, size_t n)
{
	size_t room = deflateBound(&zdef, (uLong)n) + 16;
	uint8_t *out = zbuf_room(room);
	deflateReset(&zdef);
	zdef.next_in = (Bytef *)(uintptr_t)p;
	zdef.avail_in = (uInt)n;
	zdef.next_out = out;
	zdef.avail_out = (uInt)room;
	if (deflate(&zdef, Z_SYNC_FLUSH) != Z_OK || zdef.avail_in)
		die("deflate failed on a message of %zu bytes", n);
	size_t zn = room - zdef.avail_out;
	if (zn >= 4 && memcmp(out + zn - 4, "\x00\x00\xff\xff", 4) == 0)
		zn -= 4;
	c_deflated++;
	return zn;
}

/* A compressed message inflated into zbuf; -1 when it does not inflate. */
static ssize_t inflate_message(const uint8_t *p, size_t n)
{
	static const uint8_t tail[4] = { 0x00, 0x00, 0xff, 0xff };
	size_t have = 0;
	inflateReset(&zinf);
	for (int part = 0; part < 2; part++) {
		zinf.next_in = (Bytef *)(uintptr_t)(part ? tail : p);
		zinf.avail_in = (uInt)(part ? 4 : n);
		while (zinf.avail_in) {
			uint8_t *out = zbuf_room(have + 65536);
			zinf.next_out = out + have;
			zinf.avail_out = 65536;
			int r = inflate(&zinf, Z_SYNC_FLUSH);
			have = (size_t)(zinf.next_out - out);
			if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END)
				return -1;
			if (have > MAX_MESSAGE)
				return -1;
			if (r == Z_BUF_ERROR && zinf.avail_out)
				break;
		}
	}
	c_inflated++;
	return (ssize_t)have;
}
#endif

/* Queues one masked client frame: compressed (RSV1) under --deflate when it
 * is a data message of 1 KB or more. */
static void send_frame(struct client *c, int opcode, const void *payload, size_t len)
{
	uint8_t mask[4];
	uint64_t r = rng();
	int z = 0;
	memcpy(mask, &r, 4);
#ifdef LOADGEN_DEFLATE
	if (opt.deflate && len >= 1024 && (opcode == WSP_OP_TEXT || opcode == WSP_OP_BINARY)) {
		len = deflate_message(payload, len);
		payload = zbuf;
		z = 1;
	}
#endif
	uint8_t *p = wb_reserve(c, WSP_MAX_HEADER + len);
	size_t hl = wsp_write_header(p, opcode, len, mask);
	if (z)
		p[0] |= 0x40; /* RSV1: compressed */
	memcpy(p + hl, payload, len);
	wsp_apply_mask(p + hl, len, mask);
	c->wlen += (uint32_t)(hl + len);
	mark_dirty(c);
}

/* A Socket.IO packet ("4" and the text packet): as it is, or as
 * socket.io-msgpack-parser's binary message. */
static void send_packet(struct client *c, const char *p, size_t n)
{
#ifdef LOADGEN_MSGPACK
	if (opt.msgpack && n > 1 && p[0] == '4') {
		struct sio_msgpack_buf out = { 0 };
		if (sio_msgpack_encode(p + 1, n - 1, NULL, 0, &out) < 0)
			die("cannot encode as msgpack: %.*s", (int)n, p);
		send_frame(c, WSP_OP_BINARY, out.data, out.len);
		free(out.data);
		return;
	}
#endif
	send_frame(c, WSP_OP_TEXT, p, n);
}

static void send_text(struct client *c, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("cannot format a frame");
	if ((size_t)n < sizeof buf) {
		send_packet(c, buf, (size_t)n);
		return;
	}
	/* Padded payloads: format again into a buffer of the right size. */
	char *big = xrealloc(NULL, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	send_packet(c, big, (size_t)n);
	free(big);
}

static void set_pollout(struct client *c, int on)
{
	if (c->pollout == on || c->fd < 0)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u32 = c->idx };
	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	c->pollout = (uint8_t)on;
}

static void client_fail(struct client *c, const char *why);

static void flush(struct client *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* ENOTCONN: the TCP handshake is still in flight. */
			if (errno == EAGAIN || (errno == ENOTCONN && c->state == ST_HTTP)) {
				set_pollout(c, 1);
				return;
			}
			client_fail(c, strerror(errno));
			return;
		}
		c->woff += (uint32_t)n;
	}
	c->woff = c->wlen = 0;
	set_pollout(c, 0);
}

static void flush_dirty(void)
{
	for (uint32_t i = 0; i < dirty_count; i++) {
		struct client *c = &clients[dirty_list[i]];
		c->dirty = 0;
		if (c->state != ST_CLOSED)
			flush(c);
	}
	dirty_count = 0;
}

/* ---- connection lifecycle ---- */

static void start_next_connect(void);

static void client_close(struct client *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->state < ST_CONNECTED)
		n_inflight_connects--;
	c->state = ST_CLOSED;
	free(c->rbuf);
	free(c->wbuf);
	free(c->frag);
	c->rbuf = c->wbuf = c->frag = NULL;
	c->rlen = c->rcap = c->wlen = c->woff = c->wcap = c->frag_len = c->frag_cap = 0;
}

static void client_fail(struct client *c, const char *why)
{
	if (c->state == ST_CLOSED)
		return;
	int was = c->state;
	if (opt.verbose || !fail_reason_first)
		note("client %u failed in state %d: %s", c->idx, was, why);
	if (!fail_reason_first)
		fail_reason_first = why;
	if (was == ST_READY && room_members[c->room])
		room_members[c->room]--;
	if (was >= ST_CONNECTED)
		n_closed_late++;
	else
		n_failed++;
	client_close(c);
	if (was < ST_CONNECTED)
		start_next_connect();
}

static void send_upgrade(struct client *c)
{
	uint8_t raw[16];
	char key[25];
	uint64_t a = rng(), b = rng();
	memcpy(raw, &a, 8);
	memcpy(raw + 8, &b, 8);
	wsp_base64(raw, 16, key);
	wsp_accept_key(key, 24, c->accept);
	char req[512];
	int n = snprintf(req, sizeof req,
			 "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
			 "Host: 127.0.0.1:%d\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\n%s"
			 "Sec-WebSocket-Version: 13\r\n\r\n",
			 opt.ports[c->node], key,
			 opt.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
				       "client_no_context_takeover; server_no_context_takeover\r\n" : "");
	memcpy(wb_reserve(c, (size_t)n), req, (size_t)n);
	c->wlen += (uint32_t)n;
	c->state = ST_HTTP;
	mark_dirty(c);
}

static void start_connect(struct client *c)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s (client %u; is the open-files limit too low?)", strerror(errno), c->idx);
	int one = 1;
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/* Spread the clients over 127.0.0.1..250 so that no source address
	 * needs more than a few hundred ephemeral ports. */
	struct sockaddr_in src = { .sin_family = AF_INET };
	src.sin_addr.s_addr = htonl(0x7F000000u | (1 + c->idx % (uint32_t)opt.sources));
	if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0)
		die("bind 127.0.0.%u: %s", 1 + c->idx % (uint32_t)opt.sources, strerror(errno));
	struct sockaddr_in dst = { .sin_family = AF_INET,
				   .sin_port = htons((uint16_t)opt.ports[c->node]) };
	dst.sin_addr.s_addr = htonl(0x7F000001u);
	c->fd = fd;
	c->state = ST_CONNECTING;
	n_inflight_connects++;
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = c->idx };
	c->pollout = 0;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl add: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
		client_fail(c, strerror(errno));
		return;
	}
	/* Over loopback the handshake is usually complete by now: queue the
	 * upgrade request at once and let the flush find out. A write that
	 * says EAGAIN waits for EPOLLOUT; a refused connect shows as an error
	 * on the socket. This saves a wake-up and two epoll_ctl per client. */
	send_upgrade(c);
}

static void start_next_connect(void)
{
	while (n_started < opt.clients && n_inflight_connects < opt.concurrency) {
		struct client *c = &clients[n_started++];
		if (!t_first_connect)
			t_first_connect = now_ns();
		start_connect(c);
	}
}

/* ---- Socket.IO packets ---- */

static void on_connected(struct client *c, uint64_t now)
{
	c->state = ST_CONNECTED;
	n_inflight_connects--;
	n_connected++;
	t_last_connected = now;
	start_next_connect();
}

static void send_join(struct client *c)
{
	send_text(c, "42/messages,%d[\"conversation:join\",{\"conversationId\":\"%sr%u\"}]",
		  JOIN_ACK_ID, opt.prefix, c->room);
	c->state = ST_JOINING;
}

/* The mode sends message:send: send, or latency with --event send. */
static int sends_messages(void)
{
	return opt.mode == MODE_SEND || (opt.mode == MODE_LATENCY && opt.durable);
}

/* Deliveries one send of the current mode should cause. */
static uint64_t expected_per_send(const struct client *c)
{
	if (sends_messages()) /* message:received reaches the sender too */
		return room_members[c->room];
	switch (opt.mode) {
	case MODE_NOOP:
		return 0;
	default:
		return room_members[c->room] - 1;
	}
}

static void send_load(struct client *c, uint64_t now)
{
	uint32_t ack = ++c->next_ack;
	uint64_t seq = c->seq++;
	uint64_t t = now - t_start;
	static char *pad;
	int padn = opt.pad;
	if (padn && !pad) {
		/* Words of random letters: text that compresses about as chat
		 * does (--deflate), not a run of one byte that deflate erases. */
		pad = xrealloc(NULL, (size_t)padn);
		for (int i = 0; i < padn; i++)
			pad[i] = rng() % 6 == 0 ? ' ' : (char)('a' + rng() % 26);
	}
	enum mode m = sends_messages() ? MODE_SEND : opt.mode;
	switch (m) {
	case MODE_FANOUT:
	case MODE_LATENCY:
		if (padn)
			send_text(c, "42/messages,%u[\"bench:send\",{\"conversationId\":\"%sr%u\","
				  "\"t\":%" PRIu64 ",\"s\":%u,\"n\":%" PRIu64 ",\"p\":\"%.*s\"}]",
				  ack, opt.prefix, c->room, t, c->idx, seq, padn, pad);
		else
			send_text(c, "42/messages,%u[\"bench:send\",{\"conversationId\":\"%sr%u\","
				  "\"t\":%" PRIu64 ",\"s\":%u,\"n\":%" PRIu64 "}]",
				  ack, opt.prefix, c->room, t, c->idx, seq);
		break;
	case MODE_TYPING:
		send_text(c, "42/messages,%u[\"typing:start\",{\"conversationId\":\"%sr%u\","
			  "\"isTyping\":true}]", ack, opt.prefix, c->room);
		break;
	case MODE_NOOP:
		send_text(c, "42/messages,%u[\"bench:noop\",{\"conversationId\":\"%sr%u\","
			  "\"isTyping\":true}]", ack, opt.prefix, c->room);
		break;
	case MODE_SEND:
		send_text(c, "42/messages,%u[\"message:send\",{\"conversationId\":\"%sr%u\","
			  "\"clientMessageId\":\"lg-%u-%" PRIu64 "-%" PRIu64 "\",\"type\":\"text\","
			  "\"content\":\"benchmark message %" PRIu64 " t=%" PRIu64 "\"}]",
			  ack, opt.prefix, c->room, c->idx, t_start, seq, seq, t);
		break;
	case MODE_IDLE:
		return;
	}
	c->inflight++;
	c_sent++;
	c_expected += expected_per_send(c);
}

static void hist_add(struct histogram *h, uint64_t ns)
{
	uint64_t us = ns / 1000;
	if (us < HIST_FINE)
		h->fine[us]++;
	else if (us / 100 < HIST_FINE / 100 + HIST_COARSE)
		h->coarse[us / 100 - HIST_FINE / 100]++;
	else
		h->over++;
	h->count++;
	h->sum_us += (double)ns / 1000.0;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

/* The latency (µs) at quantile q of the recorded samples. */
static double hist_quantile(const struct histogram *h, double q)
{
	if (!h->count)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->count);
	if (rank >= h->count)
		rank = h->count - 1;
	uint64_t seen = 0;
	for (int i = 0; i < HIST_FINE; i++) {
		seen += h->fine[i];
		if (seen > rank)
			return i;
	}
	for (int i = 0; i < HIST_COARSE; i++) {
		seen += h->coarse[i];
		if (seen > rank)
			return (double)(HIST_FINE + i * 100);
	}
	return (double)h->max_ns / 1000.0;
}

/* Reads an unsigned integer after key (e.g. "\"t\":") in p[0..len); -1 if absent. */
static int64_t json_uint_field(const char *p, size_t len, const char *key)
{
	size_t kl = strlen(key);
	const char *k = memmem(p, len, key, kl);
	if (!k)
		return -1;
	const char *v = k + kl, *end = p + len;
	while (v < end && *v == ' ')
		v++;
	int64_t x = 0;
	const char *d = v;
	while (d < end && *d >= '0' && *d <= '9')
		x = x * 10 + (*d++ - '0');
	if (d == v)
		return -1;
	if (d < end && (*d == '.' || *d == 'e' || *d == 'E')) {
		/* A server that re-encodes numbers may write 1.5e+10. */
		char tmp[64];
		size_t n = (size_t)(end - v) < sizeof tmp - 1 ? (size_t)(end - v) : sizeof tmp - 1;
		memcpy(tmp, v, n);
		tmp[n] = '\0';
		x = (int64_t)strtod(tmp, NULL);
	}
	return x;
}

static int name_is(const char *name, size_t len, const char *lit)
{
	return strlen(lit) == len && memcmp(name, lit, len) == 0;
}

/* The ack payload that means success for the current mode. */
static int ack_ok(const char *p, size_t len)
{
	if (memmem(p, len, "\"status\":\"error\"", 16))
		return 0;
	if (sends_messages())
		return memmem(p, len, "\"status\":\"sent\"", 15) != NULL;
	switch (opt.mode) {
	case MODE_FANOUT:
	case MODE_LATENCY:
		return len >= 6 && memcmp(p, "[true]", 6) == 0;
	case MODE_SEND:
		return memmem(p, len, "\"status\":\"sent\"", 15) != NULL;
	case MODE_TYPING:
		return memmem(p, len, "\"success\":true", 14) != NULL;
	case MODE_NOOP:
		return len >= 6 && memcmp(p, "[true]", 6) == 0;
	default:
		return 1;
	}
}

/* A delivery's latency, from the send time the sender wrote into it; the
 * deliveries whose sender connects to another port go into hist_remote
 * too. sender < 0: unknown. */
static void sample_delivery(const struct client *c, int64_t t, int64_t sender, uint64_t now)
{
	int remote = sender >= 0 && sender < opt.clients && clients[sender].node != c->node;
	if (remote) {
		c_recv_remote++;
		if (sending && now <= t_load1)
			c_recv_remote_window++;
	}
	if (t < 0 || now < t_lat0)
		return;
	uint64_t sent_at = t_start + (uint64_t)t;
	uint64_t ns = now > sent_at ? now - sent_at : 0;
	hist_add(hist, ns);
	if (remote)
		hist_add(hist_remote, ns);
}

static void on_event(struct client *c, const char *p, size_t len, uint64_t now)
{
	/* p: ["name",payload] */
	if (len < 4 || p[0] != '[' || p[1] != '"') {
		c_other_events++;
		return;
	}
	const char *name = p + 2;
	const char *q = memchr(name, '"', len - 2);
	if (!q) {
		c_other_events++;
		return;
	}
	size_t nl = (size_t)(q - name);
	const char *body = q + 1;
	size_t bl = len - (size_t)(body - p);
	int counts = 0;
	if (sends_messages()) {
		counts = name_is(name, nl, "message:received");
		/* The send time is in the content ("... t=T"), the sender in
		 * the clientMessageId ("lg-IDX-..."). */
		if (counts && opt.mode == MODE_LATENCY)
			sample_delivery(c, json_uint_field(body, bl, "t="), json_uint_field(body, bl,
					"\"clientMessageId\":\"lg-"), now);
	} else if (opt.mode == MODE_FANOUT || opt.mode == MODE_LATENCY) {
		if (name_is(name, nl, "bench:recv")) {
			counts = 1;
			sample_delivery(c, json_uint_field(body, bl, "\"t\":"),
					json_uint_field(body, bl, "\"s\":"), now);
		}
	} else if (opt.mode == MODE_TYPING) {
		counts = name_is(name, nl, "typing:start");
	}
	if (counts) {
		c_recv++;
		if (sending && now <= t_load1)
			c_recv_window++;
		return;
	}
	if (name_is(name, nl, "conversation:joined"))
		c_recv_other_names[0]++;
	else if (name_is(name, nl, "user:online"))
		c_recv_other_names[1]++;
	else if (name_is(name, nl, "user:offline"))
		c_recv_other_names[2]++;
	else if (name_is(name, nl, "typing:stop"))
		c_recv_other_names[3]++;
	else if (name_is(name, nl, "error"))
		c_recv_other_names[4]++;
	else
		c_other_events++;
}

static void on_ack(struct client *c, uint64_t id, const char *p, size_t len, uint64_t now)
{
	if (c->state == ST_JOINING && id == JOIN_ACK_ID) {
		if (!memmem(p, len, "\"success\":true", 14)) {
			client_fail(c, "conversation:join was refused");
			return;
		}
		c->state = ST_READY;
		room_members[c->room]++;
		n_joined++;
		t_last_joined = now;
		return;
	}
	if (!c->inflight) {
		c_other_events++;
		return;
	}
	c->inflight--;
	if (!ack_ok(p, len)) {
		if (!c_ack_err)
			note("first error ack: %.*s", (int)(len > 200 ? 200 : len), p);
		c_ack_err++;
		/* A refused send delivers nothing. */
		c_expected -= expected_per_send(c);
		return;
	}
	c_acked++;
	if (sending && now <= t_load1)
		c_acked_window++;
}

static void on_message(struct client *c, const uint8_t *data, size_t len, uint64_t now)
{
	const char *p = (const char *)data;
	if (len == 0)
		return;
	switch (p[0]) {
	case '0': /* Engine.IO open */
		if (c->state == ST_WS) {
			send_text(c, "40/messages,{\"userId\":\"%su%u\"}", opt.prefix,
				  opt.users > 0 ? c->idx % (uint32_t)opt.users : c->idx);
			c->state = ST_SIO;
		}
		return;
	case '1':
		client_fail(c, "server sent Engine.IO close");
		return;
	case '2': /* ping: answer pong, with the same probe data if any */
		c_pings++;
		{
			char pong[64];
			size_t n = len < sizeof pong ? len : sizeof pong;
			memcpy(pong, p, n);
			pong[0] = '3';
			send_frame(c, WSP_OP_TEXT, pong, n);
		}
		return;
	case '4':
		break;
	default:
		c_other_events++;
		return;
	}
	if (len < 2) {
		c_other_events++;
		return;
	}
	char type = p[1];
	size_t pos = 2;
	/* Namespace: "/messages," */
	if (pos < len && p[pos] == '/') {
		const char *comma = memchr(p + pos, ',', len - pos);
		pos = comma ? (size_t)(comma - p) + 1 : len;
	}
	uint64_t id = 0;
	int has_id = 0;
	while (pos < len && p[pos] >= '0' && p[pos] <= '9') {
		id = id * 10 + (uint64_t)(p[pos++] - '0');
		has_id = 1;
	}
	const char *body = p + pos;
	size_t bl = len - pos;
	switch (type) {
	case '0':
		if (c->state == ST_SIO && memmem(body, bl, "\"sid\"", 5))
			on_connected(c, now);
		else
			c_other_events++;
		return;
	case '4':
		client_fail(c, "CONNECT_ERROR from the server");
		return;
	case '2':
		on_event(c, body, bl, now);
		return;
	case '3':
		if (has_id)
			on_ack(c, id, body, bl, now);
		else
			c_other_events++;
		return;
	case '1':
		client_fail(c, "server disconnected the namespace");
		return;
	default:
		c_other_events++;
	}
}

/* A whole message: with --parser msgpack, a binary one is a packet, read
 * back into the text form the handlers above read. */
static void on_whole(struct client *c, int opcode, const uint8_t *data, size_t len, uint64_t now)
{
#ifdef LOADGEN_MSGPACK
	if (opt.msgpack && opcode == WSP_OP_BINARY) {
		static const struct sio_msgpack_limits lim = { 1000, 1000, MAX_MESSAGE };
		struct sio_msgpack_packet m;
		const char *why;
		if (sio_msgpack_decode(data, len, &lim, &m, &why) < 0) {
			client_fail(c, "a msgpack packet that does not decode");
			return;
		}
		char *text = xrealloc(NULL, 1 + SIO_HEADER_MAX(m.pkt.nsp_len) + m.pkt.len);
		text[0] = '4';
		size_t n = 1 + sio_write_header(text + 1, m.pkt.type, 0, m.pkt.nsp, m.pkt.nsp_len,
						m.pkt.id);
		memcpy(text + n, m.pkt.data, m.pkt.len);
		on_message(c, (const uint8_t *)text, n + m.pkt.len, now);
		free(text);
		sio_msgpack_packet_fini(&m);
		return;
	}
#endif
	(void)opcode;
	on_message(c, data, len, now);
}

/* A whole data message as it came: inflated first when compressed. */
static void on_data(struct client *c, int opcode, int z, const uint8_t *data, size_t len,
		    uint64_t now)
{
#ifdef LOADGEN_DEFLATE
	if (z) {
		ssize_t n = inflate_message(data, len);
		if (n < 0) {
			client_fail(c, "a compressed message that does not inflate");
			return;
		}
		/* on_whole may send (acks, pongs), which uses zbuf: a copy. */
		uint8_t *copy = xrealloc(NULL, (size_t)n + 1);
		memcpy(copy, zbuf, (size_t)n);
		on_whole(c, opcode, copy, (size_t)n, now);
		free(copy);
		return;
	}
#endif
	(void)z;
	on_whole(c, opcode, data, len, now);
}

/* Handles complete frames in buf[0..len); returns bytes consumed, -1 on error. */
static ssize_t parse_frames(struct client *c, uint8_t *buf, size_t len, uint64_t now)
{
	size_t pos = 0;
	while (pos < len && c->state != ST_CLOSED) {
		struct wsp_frame f;
		int r = wsp_parse_header(buf + pos, len - pos, &f);
		if (r == 0)
			break;
		if (r < 0 || f.masked || (f.rsv1 && !opt.deflate)) {
			client_fail(c, r < 0 || f.rsv1 ? "bad frame header" : "server frame is masked");
			return -1;
		}
		if (f.payload_len > MAX_MESSAGE) {
			client_fail(c, "server frame too large");
			return -1;
		}
		if (len - pos - f.header_len < f.payload_len)
			break;
		uint8_t *payload = buf + pos + f.header_len;
		size_t plen = (size_t)f.payload_len;
		pos += f.header_len + plen;
		switch (f.opcode) {
		case WSP_OP_TEXT:
		case WSP_OP_BINARY:
			if (f.fin) {
				on_data(c, f.opcode, f.rsv1, payload, plen, now);
			} else {
				c->frag_op = (uint8_t)f.opcode;
				c->frag_z = (uint8_t)f.rsv1;
				c->frag_len = 0;
				goto append;
			}
			break;
		case WSP_OP_CONT:
		append:
			if ((size_t)c->frag_len + plen > MAX_MESSAGE) {
				client_fail(c, "fragmented message too large");
				return -1;
			}
			if (c->frag_len + plen > c->frag_cap) {
				c->frag_cap = (uint32_t)(c->frag_len + plen) * 2;
				c->frag = xrealloc(c->frag, c->frag_cap);
			}
			memcpy(c->frag + c->frag_len, payload, plen);
			c->frag_len += (uint32_t)plen;
			if (f.fin && f.opcode == WSP_OP_CONT) {
				on_data(c, c->frag_op, c->frag_z, c->frag, c->frag_len, now);
				c->frag_len = 0;
			}
			break;
		case WSP_OP_PING:
			send_frame(c, WSP_OP_PONG, payload, plen);
			break;
		case WSP_OP_CLOSE:
			client_fail(c, "server closed the WebSocket");
			return -1;
		default:
			break;
		}
	}
	return (ssize_t)pos;
}

static int header_eq(const char *line, size_t len, const char *name, const char **value)
{
	size_t nl = strlen(name);
	if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return 0;
	const char *v = line + nl + 1;
	while (*v == ' ')
		v++;
	*value = v;
	return 1;
}

/* Checks the upgrade response in buf[0..len) (ending with CRLFCRLF). */
static int check_upgrade(struct client *c, const char *buf, size_t len)
{
	if (len < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0)
		return -1;
	const char *line = memchr(buf, '\n', len);
	int accept_ok = 0, deflate_ok = 0;
	while (line && (size_t)(line - buf) < len) {
		line++;
		const char *eol = memchr(line, '\r', len - (size_t)(line - buf));
		if (!eol || eol == line)
			break;
		const char *v;
		if (header_eq(line, (size_t)(eol - line), "Sec-WebSocket-Accept", &v) &&
		    (size_t)(eol - v) == 28 && memcmp(v, c->accept, 28) == 0)
			accept_ok = 1;
		if (header_eq(line, (size_t)(eol - line), "Sec-WebSocket-Extensions", &v) &&
		    strncmp(v, "permessage-deflate", 18) == 0)
			deflate_ok = 1;
		line = memchr(eol, '\n', len - (size_t)(eol - buf));
	}
	if (!accept_ok)
		return -2;
	return opt.deflate && !deflate_ok ? -3 : 0;
}

static void on_readable(struct client *c)
{
	size_t have = c->rlen;
	if (sbuf_cap < have + 65536) {
		sbuf_cap = (have + 65536) * 2;
		sbuf = xrealloc(sbuf, sbuf_cap);
	}
	if (have)
		memcpy(sbuf, c->rbuf, have);
	ssize_t n = read(c->fd, sbuf + have, sbuf_cap - have);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		client_fail(c, strerror(errno));
		return;
	}
	if (n == 0) {
		client_fail(c, "server closed the connection");
		return;
	}
	uint64_t now = now_ns();
	size_t len = have + (size_t)n, pos = 0;
	if (c->state == ST_HTTP) {
		uint8_t *end = memmem(sbuf, len, "\r\n\r\n", 4);
		if (!end) {
			if (len > 8192) {
				client_fail(c, "upgrade response too long");
				return;
			}
			goto keep;
		}
		size_t hl = (size_t)(end - sbuf) + 4;
		int r = check_upgrade(c, (const char *)sbuf, hl);
		if (r < 0) {
			note("bad upgrade response: %.*s", (int)(hl > 300 ? 300 : hl), sbuf);
			client_fail(c, r == -1 ? "no 101 to the upgrade" :
				    r == -2 ? "bad Sec-WebSocket-Accept" :
				    "--deflate: the server did not agree to permessage-deflate");
			return;
		}
		c->state = ST_WS;
		pos = hl;
	}
	{
		ssize_t used = parse_frames(c, sbuf + pos, len - pos, now);
		if (used < 0 || c->state == ST_CLOSED)
			return;
		pos += (size_t)used;
	}
keep:
	c->rlen = (uint32_t)(len - pos);
	if (c->rlen) {
		if (c->rlen > c->rcap) {
			c->rcap = c->rlen < 256 ? 256 : c->rlen;
			c->rbuf = xrealloc(c->rbuf, c->rcap);
		}
		memmove(c->rbuf, sbuf + pos, c->rlen);
	}
}

static void on_writable(struct client *c)
{
	flush(c);
}

/* ---- the event loop ---- */

static void pump_window(void)
{
	uint64_t now = now_ns();
	/* A send is acked before its deliveries on other nodes are made (they
	 * go through Redis): without a bound on deliveries still to come,
	 * the window would fill a queue rather than measure the cluster. */
	uint64_t cap = opt.undelivered > 0 ? (uint64_t)opt.undelivered : UINT64_MAX;
	for (int i = 0; i < n_senders; i++) {
		struct client *c = &clients[sender_list[i]];
		if (c->state != ST_READY)
			continue;
		while (c->inflight < (uint32_t)opt.window && c_expected - c_recv < cap)
			send_load(c, now);
	}
}

static uint64_t rate_rr;

static void pump_rate(void)
{
	uint64_t now = now_ns();
	uint64_t due = (uint64_t)(opt.rate * (double)(now - t_load0) / 1e9);
	while (c_sent < due) {
		struct client *c = &clients[sender_list[rate_rr++ % (uint64_t)n_senders]];
		if (c->state != ST_READY) {
			c_sent++; /* keeps the schedule; counted as unacked below */
			continue;
		}
		send_load(c, now);
	}
}

static void loop_once(int timeout_ms)
{
	struct epoll_event evs[512];
	int n = epoll_wait(ep, evs, 512, timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return;
		die("epoll_wait: %s", strerror(errno));
	}
	for (int i = 0; i < n; i++) {
		uint32_t id = evs[i].data.u32;
		if (id == TIMER_TOKEN) {
			uint64_t ticks;
			if (read(timer_fd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
				die("timerfd read: %s", strerror(errno));
			if (sending && opt.mode == MODE_LATENCY)
				pump_rate();
			continue;
		}
		struct client *c = &clients[id];
		if (c->state == ST_CLOSED)
			continue;
		uint32_t e = evs[i].events;
		if (e & EPOLLOUT)
			on_writable(c);
		if (c->state != ST_CLOSED && (e & (EPOLLIN | EPOLLERR | EPOLLHUP)))
			on_readable(c);
	}
	if (sending && opt.mode != MODE_LATENCY && opt.mode != MODE_IDLE)
		pump_window();
	flush_dirty();
}

static int ms_until(uint64_t deadline)
{
	uint64_t now = now_ns();
	if (now >= deadline)
		return 0;
	uint64_t ms = (deadline - now) / 1000000 + 1;
	return ms > 100 ? 100 : (int)ms;
}

/* ---- the run ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: loadgen --mode idle|fanout|latency|send|typing|noop [options]\n"
		"  --port P[,P2..]   server port on 127.0.0.1 (3000); several (up to %d, nodes of a\n"
		"                    cluster): client i connects to the (i %% n)-th, and with one\n"
		"                    sender per room, room r's sender is its member r %% n\n"
		"  --clients N       Socket.IO clients (1000)\n"
		"  --room K          clients per room; client i joins conversation r<i/K> (10)\n"
		"  --senders M       clients that send (default: one per room)\n"
		"  --window W        unacked sends per sender in fanout/send/typing (8)\n"
		"  --rate R          total sends/s in latency mode (2000)\n"
		"  --duration S      measured seconds of load (10)\n"
		"  --warmup S        latency samples before this are dropped (1)\n"
		"  --hold S          idle: seconds connected and idle before the RSS (2)\n"
		"  --drain S         at most this long to wait for the last deliveries (5)\n"
		"  --concurrency C   handshakes in flight while connecting (200)\n"
		"  --pad B           extra payload bytes in bench:send, up to 16 MB (0)\n"
		"  --sources S       spread clients over 127.0.0.1..S (250)\n"
		"  --users U         client i is user u<i %% U> (default: every client its own user)\n"
		"  --server-pid PID[,PID2..]  read the server's RSS and CPU from /proc (the CPU of\n"
		"                    all of them added up; the RSS and threads of the first)\n"
		"  --db-pid PID      also report the CPU of a database: PID and its children\n"
		"  --event send      latency mode sends message:send (durable) instead of bench:send;\n"
		"                    message:received's latency, the sender's own copy included\n"
		"  --redis-pid PID   report Redis's CPU over the measured window\n"
		"  --redis-sock PATH report Redis's INFO stats bytes in and out over the window\n"
		"  --cluster-metrics report every port's parley_cluster_* counters over the window\n"
		"  --undelivered D   fanout/send/typing: no new send while D deliveries are still due\n"
		"                    (a cluster acks before the other nodes deliver; 0: no bound)\n"
		"  --label NAME      server name printed in the result line\n"
		"  --parser P        json, or msgpack (socket.io-msgpack-parser; in-tree builds)\n"
		"  --deflate         offer permessage-deflate; compress sends of 1 KB or more (zlib)\n"
		"  --verbose\n", MAX_PORTS);
	exit(2);
}

/* "A,B,...": up to max numbers into out; their count, 0 when malformed. */
static int int_list(const char *arg, int *out, int max)
{
	int n = 0;
	const char *p = arg;
	while (*p && n < max) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || v <= 0 || v > 1 << 30 || (*end && *end != ','))
			return 0;
		out[n++] = (int)v;
		p = *end ? end + 1 : end;
	}
	return *p ? 0 : n;
}

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mode", 1, 0, 'm' },	   { "port", 1, 0, 'p' },	  { "clients", 1, 0, 'n' },
		{ "room", 1, 0, 'k' },	   { "senders", 1, 0, 's' },	  { "window", 1, 0, 'w' },
		{ "rate", 1, 0, 'r' },	   { "duration", 1, 0, 'd' },	  { "warmup", 1, 0, 'u' },
		{ "hold", 1, 0, 'H' },	   { "drain", 1, 0, 'D' },	  { "concurrency", 1, 0, 'c' },
		{ "pad", 1, 0, 'P' },	   { "sources", 1, 0, 'S' },	  { "server-pid", 1, 0, 'i' },
		{ "users", 1, 0, 'U' },	   { "prefix", 1, 0, 'X' },	  { "parser", 1, 0, 'M' },
		{ "label", 1, 0, 'l' },	   { "verbose", 0, 0, 'v' },	  { "help", 0, 0, 'h' },
		{ "deflate", 0, 0, 'Z' },  { "db-pid", 1, 0, 'B' },	  { "event", 1, 0, 'E' },
		{ "redis-pid", 1, 0, 'R' }, { "redis-sock", 1, 0, 'Q' }, { "cluster-metrics", 0, 0, 'C' },
		{ "undelivered", 1, 0, 'N' },
		{ 0, 0, 0, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'm': {
			int found = -1;
			for (int i = 0; i < (int)(sizeof(mode_names) / sizeof(mode_names[0])); i++)
				if (strcmp(optarg, mode_names[i]) == 0)
					found = i;
			if (found < 0)
				usage();
			opt.mode = (enum mode)found;
			break;
		}
		case 'p': opt.n_ports = int_list(optarg, opt.ports, MAX_PORTS); break;
		case 'n': opt.clients = atoi(optarg); break;
		case 'k': opt.room = atoi(optarg); break;
		case 's': opt.senders = atoi(optarg); break;
		case 'w': opt.window = atoi(optarg); break;
		case 'r': opt.rate = atof(optarg); break;
		case 'd': opt.duration = atof(optarg); break;
		case 'u': opt.warmup = atof(optarg); break;
		case 'H': opt.hold = atof(optarg); break;
		case 'D': opt.drain = atof(optarg); break;
		case 'c': opt.concurrency = atoi(optarg); break;
		case 'P': opt.pad = atoi(optarg); break;
		case 'S': opt.sources = atoi(optarg); break;
		case 'U': opt.users = atoi(optarg); break;
		case 'X': opt.prefix = optarg; break;
		case 'i': opt.n_server_pids = int_list(optarg, opt.server_pids, MAX_PIDS); break;
		case 'B': opt.db_pid = atoi(optarg); break;
		case 'R': opt.redis_pid = atoi(optarg); break;
		case 'Q': opt.redis_sock = optarg; break;
		case 'C': opt.cluster_metrics = 1; break;
		case 'N': opt.undelivered = atoi(optarg); break;
		case 'E':
			if (strcmp(optarg, "send") != 0 && strcmp(optarg, "bench") != 0)
				usage();
			opt.durable = strcmp(optarg, "send") == 0;
			break;
		case 'l': opt.label = optarg; break;
		case 'v': opt.verbose = 1; break;
		case 'Z':
#ifndef LOADGEN_DEFLATE
			die("--deflate: this loadgen was built without zlib");
#endif
			opt.deflate = 1;
			break;
		case 'M':
			opt.msgpack = strcmp(optarg, "msgpack") == 0;
			if (!opt.msgpack && strcmp(optarg, "json") != 0)
				usage();
#ifndef LOADGEN_MSGPACK
			if (opt.msgpack)
				die("--parser msgpack: this loadgen was built outside the tree");
#endif
			break;
		default: usage();
		}
	}
	opt.port = opt.ports[0];
	opt.server_pid = opt.n_server_pids ? opt.server_pids[0] : 0;
	for (int i = 0; i < opt.n_ports; i++)
		if (opt.ports[i] < 1 || opt.ports[i] > 65535)
			usage();
	if (opt.clients < 1 || opt.room < 1 || opt.window < 1 || opt.n_ports < 1 || opt.concurrency < 1 || opt.sources < 1 || opt.sources > 254 ||
	    opt.duration <= 0 || opt.rate <= 0 || opt.undelivered < 0 || opt.pad < 0 || opt.pad > (16 << 20))
		usage();
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	if ((rlim_t)opt.clients + 16 > rl.rlim_cur)
		die("%d clients need more open files than the limit (%llu): lower --clients",
		    opt.clients, (unsigned long long)rl.rlim_cur);
}

static void pick_senders(void)
{
	n_rooms = (opt.clients + opt.room - 1) / opt.room;
	int m = opt.senders > 0 ? opt.senders : n_rooms;
	if (m > opt.clients)
		m = opt.clients;
	sender_list = calloc((size_t)m, sizeof *sender_list);
	/* Sender j: room j % rooms, and the (j / rooms)-th member of that room. */
	for (int j = 0; j < m; j++) {
		int room = j % n_rooms, member = (j / n_rooms) % opt.room;
		/* Several servers: the rooms' senders spread over them. */
		if (opt.n_ports > 1)
			member = (member + room % opt.n_ports) % opt.room;
		int idx = room * opt.room + member;
		if (idx >= opt.clients)
			idx = room * opt.room;
		sender_list[j] = (uint32_t)idx;
	}
	n_senders = m;
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
#ifdef LOADGEN_DEFLATE
	if (opt.deflate && (deflateInit2(&zdef, Z_BEST_SPEED, Z_DEFLATED, -15, 8,
					 Z_DEFAULT_STRATEGY) != Z_OK ||
			    inflateInit2(&zinf, -15) != Z_OK))
		die("--deflate: zlib would not start");
#endif
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	raise_fd_limit();
	t_start = now_ns();
	rng_state = t_start ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;
	if (!rng_state)
		rng_state = 1;

	clients = calloc((size_t)opt.clients, sizeof *clients);
	dirty_list = calloc((size_t)opt.clients, sizeof *dirty_list);
	hist = calloc(1, sizeof *hist);
	hist_remote = calloc(1, sizeof *hist_remote);
	if (!clients || !dirty_list || !hist || !hist_remote)
		die("out of memory");
	pick_senders();
	room_members = calloc((size_t)n_rooms, sizeof *room_members);
	for (int i = 0; i < opt.clients; i++) {
		clients[i].fd = -1;
		clients[i].idx = (uint32_t)i;
		clients[i].room = (uint32_t)(i / opt.room);
		clients[i].node = (uint8_t)(i % opt.n_ports);
		clients[i].state = ST_CLOSED;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));

	long rss0 = server_rss_kb();
	double scpu0 = server_cpu_s(), lcpu0 = self_cpu_s();

	/* Phase 1: connect everyone, at most --concurrency handshakes at once. */
	note("%s: connecting %d clients to 127.0.0.1:%d%s", opt.label, opt.clients, opt.port,
	     opt.n_ports > 1 ? " and the other ports" : "");
	start_next_connect();
	uint64_t deadline = now_ns() + 180 * NS_PER_S;
	while (n_connected + n_failed < opt.clients && now_ns() < deadline)
		loop_once(100);
	uint64_t t_conn = t_last_connected > t_first_connect ? t_last_connected - t_first_connect : 1;
	double connect_rate = (double)n_connected / ((double)t_conn / 1e9);
	double scpu1 = server_cpu_s(), lcpu1 = self_cpu_s();
	note("connected %d/%d in %.3f s (%.0f/s), %d failed", n_connected, opt.clients,
	     (double)t_conn / 1e9, connect_rate, n_failed + (opt.clients - n_connected - n_failed));

	/* Phase 2: everyone joins its room; all joins are pipelined. */
	t_first_join = now_ns();
	for (int i = 0; i < opt.clients; i++)
		if (clients[i].state == ST_CONNECTED)
			send_join(&clients[i]);
	flush_dirty();
	deadline = now_ns() + 120 * NS_PER_S;
	while (n_joined < n_connected - n_closed_late && now_ns() < deadline)
		loop_once(100);
	t_ready = (t_last_joined > t_first_join ? t_last_joined : now_ns()) - t_first_connect;
	double join_s = (double)((t_last_joined > t_first_join ? t_last_joined : now_ns()) - t_first_join) / 1e9;
	note("joined %d rooms of %d: %d clients in %.3f s", n_rooms, opt.room, n_joined, join_s);

	/* Phase 3: the load. */
	long rss1 = -1;
	double scpu2, lcpu2, scpu3, lcpu3, idle_scpu = -1, dcpu2 = -1, dcpu3 = -1;
	double load_s = opt.duration;
	if (opt.mode == MODE_IDLE) {
		scpu2 = server_cpu_s();
		lcpu2 = self_cpu_s();
		uint64_t until = now_ns() + (uint64_t)(opt.hold * 1e9);
		while (now_ns() < until)
			loop_once(ms_until(until));
		rss1 = server_rss_kb();
		scpu3 = server_cpu_s();
		lcpu3 = self_cpu_s();
		idle_scpu = scpu3 - scpu2;
		load_s = opt.hold;
	} else {
		if (opt.mode == MODE_LATENCY) {
			timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
			if (timer_fd < 0)
				die("timerfd_create: %s", strerror(errno));
			struct epoll_event ev = { .events = EPOLLIN, .data.u32 = TIMER_TOKEN };
			epoll_ctl(ep, EPOLL_CTL_ADD, timer_fd, &ev);
			struct itimerspec its = { .it_interval = { 0, 500000 }, .it_value = { 0, 500000 } };
			timerfd_settime(timer_fd, 0, &its, NULL);
		}
		t_load0 = now_ns();
		double warm = opt.mode == MODE_LATENCY ? opt.warmup : 0;
		t_lat0 = t_load0 + (uint64_t)(warm * 1e9);
		t_load1 = t_load0 + (uint64_t)((warm + opt.duration) * 1e9);
		scpu2 = server_cpu_s();
		lcpu2 = self_cpu_s();
		dcpu2 = db_cpu_s();
		threads_sample(0);
		probe_sample(&probe0);
		sending = 1;
		/* Window counters count from the end of the warm-up. */
		uint64_t sent_at_warm = 0, acked_at_warm = 0, recv_at_warm = 0, remote_at_warm = 0;
		int warmed = warm == 0;
		uint64_t next_note = t_load0 + NS_PER_S;
		while (now_ns() < t_load1) {
			loop_once(ms_until(t_load1));
			uint64_t now = now_ns();
			if (!warmed && now >= t_lat0) {
				warmed = 1;
				sent_at_warm = c_sent;
				acked_at_warm = c_acked_window;
				recv_at_warm = c_recv_window;
				remote_at_warm = c_recv_remote_window;
				scpu2 = server_cpu_s();
				lcpu2 = self_cpu_s();
				dcpu2 = db_cpu_s();
				threads_sample(0);
				probe_sample(&probe0);
			}
			if (opt.verbose && now >= next_note) {
				note("sent %" PRIu64 " acked %" PRIu64 " recv %" PRIu64, c_sent, c_acked, c_recv);
				next_note += NS_PER_S;
			}
		}
		scpu3 = server_cpu_s();
		lcpu3 = self_cpu_s();
		dcpu3 = db_cpu_s();
		threads_sample(1);
		probe_sample(&probe1);
		c_sent_window = c_sent - sent_at_warm;
		c_recv_remote_window -= remote_at_warm;
		c_acked_window -= acked_at_warm;
		c_recv_window -= recv_at_warm;
		sending = 0;
		if (timer_fd >= 0) {
			struct itimerspec off = { 0 };
			timerfd_settime(timer_fd, 0, &off, NULL);
		}
		/* Drain: the last acks and deliveries, until complete or quiet. */
		uint64_t drain_end = now_ns() + (uint64_t)(opt.drain * 1e9);
		while (now_ns() < drain_end) {
			int inflight = 0;
			for (int i = 0; i < n_senders; i++)
				if (clients[sender_list[i]].state == ST_READY)
					inflight += (int)clients[sender_list[i]].inflight;
			if (!inflight && c_recv >= c_expected)
				break;
			loop_once(ms_until(drain_end));
		}
	}

	/* The report. */
	double scpu = scpu0 >= 0 ? scpu3 - scpu2 : -1;
	double lcpu = lcpu3 - lcpu2;
	double conn_scpu = scpu0 >= 0 ? scpu1 - scpu0 : -1;
	double conn_lcpu = lcpu1 - lcpu0;
	int64_t lost = (int64_t)c_expected - (int64_t)c_recv;
	uint64_t unacked = c_sent - c_acked - c_ack_err;
	printf("RESULT mode=%s parser=%s server=%s clients=%d users=%d room=%d senders=%d window=%d",
	       mode_names[opt.mode], opt.msgpack ? "msgpack" : "json", opt.label, opt.clients,
	       opt.users > 0 && opt.users < opt.clients ? opt.users : opt.clients, opt.room,
	       n_senders, opt.window);
	printf(" connected=%d failed=%d closed_later=%d joined=%d connect_s=%.3f connect_rate=%.0f"
	       " connect_server_cpu_s=%.2f connect_loadgen_cpu_s=%.2f join_s=%.3f ready_s=%.3f",
	       n_connected, opt.clients - n_connected, n_closed_late, n_joined,
	       (double)t_conn / 1e9, connect_rate, conn_scpu, conn_lcpu, join_s,
	       (double)t_ready / 1e9);
	if (opt.mode == MODE_IDLE) {
		double per = rss0 > 0 && rss1 > 0 && n_connected
				     ? (double)(rss1 - rss0) * 1024.0 / n_connected
				     : -1;
		printf(" rss_before_kb=%ld rss_after_kb=%ld mem_per_conn_b=%.0f idle_server_cpu_s=%.2f",
		       rss0, rss1, per, idle_scpu);
	} else {
		if (opt.mode == MODE_LATENCY)
			printf(" rate=%.0f warmup_s=%.1f", opt.rate, opt.warmup);
		printf(" duration_s=%.2f sent=%" PRIu64 " acked=%" PRIu64 " ack_err=%" PRIu64
		       " unacked=%" PRIu64 " sends_per_s=%.0f acks_per_s=%.0f deliveries=%" PRIu64
		       " deliveries_per_s=%.0f expected=%" PRIu64 " lost=%" PRId64,
		       load_s, c_sent, c_acked, c_ack_err, unacked, (double)c_sent_window / load_s,
		       (double)c_acked_window / load_s, c_recv, (double)c_recv_window / load_s,
		       c_expected, lost);
		if (opt.mode == MODE_FANOUT || opt.mode == MODE_LATENCY)
			printf(" lat_samples=%" PRIu64 " lat_mean_us=%.0f lat_p50_us=%.0f lat_p90_us=%.0f"
			       " lat_p99_us=%.0f lat_p999_us=%.0f lat_max_us=%.0f",
			       hist->count, hist->count ? hist->sum_us / (double)hist->count : 0,
			       hist_quantile(hist, 0.50), hist_quantile(hist, 0.90),
			       hist_quantile(hist, 0.99), hist_quantile(hist, 0.999),
			       (double)hist->max_ns / 1000.0);
		if (opt.n_ports > 1) {
			printf(" ports=%d remote_deliveries=%" PRIu64 " remote_deliveries_per_s=%.0f",
			       opt.n_ports, c_recv_remote, (double)c_recv_remote_window / load_s);
			if (opt.mode == MODE_FANOUT || opt.mode == MODE_LATENCY)
				printf(" rlat_samples=%" PRIu64 " rlat_p50_us=%.0f rlat_p90_us=%.0f"
				       " rlat_p99_us=%.0f rlat_p999_us=%.0f rlat_max_us=%.0f",
				       hist_remote->count, hist_quantile(hist_remote, 0.50),
				       hist_quantile(hist_remote, 0.90), hist_quantile(hist_remote, 0.99),
				       hist_quantile(hist_remote, 0.999),
				       (double)hist_remote->max_ns / 1000.0);
		}
		if (opt.redis_pid)
			printf(" redis_cpu_s=%.2f", probe0.redis_cpu >= 0 && probe1.redis_cpu >= 0
							     ? probe1.redis_cpu - probe0.redis_cpu : -1);
		if (opt.redis_sock)
			printf(" redis_in_bytes=%lld redis_out_bytes=%lld redis_commands=%lld",
			       probe1.redis_in - probe0.redis_in, probe1.redis_out - probe0.redis_out,
			       probe1.redis_cmds - probe0.redis_cmds);
		if (opt.cluster_metrics)
			printf(" published=%lld cluster_received=%lld cluster_deliveries=%lld",
			       probe1.published - probe0.published, probe1.received - probe0.received,
			       probe1.cluster_deliveries - probe0.cluster_deliveries);
	}
	printf(" server_cpu_s=%.2f server_cpu_pct=%.0f loadgen_cpu_s=%.2f loadgen_cpu_pct=%.0f",
	       scpu, scpu >= 0 ? 100.0 * scpu / load_s : -1, lcpu, 100.0 * lcpu / load_s);
	if (opt.db_pid)
		printf(" db_cpu_s=%.2f", dcpu2 >= 0 && dcpu3 >= 0 ? dcpu3 - dcpu2 : -1);
	if (opt.mode != MODE_IDLE)
		threads_print();
#ifdef LOADGEN_DEFLATE
	/* Messages the server sent compressed and those the loadgen did: a
	 * round with --deflate whose inflated is 0 measured no compression. */
	if (opt.deflate)
		printf(" deflate=1 pad=%d inflated=%" PRIu64 " deflated=%" PRIu64, opt.pad,
		       c_inflated, c_deflated);
#endif
	printf(" pings=%" PRIu64 " joined_events=%" PRIu64 " online_events=%" PRIu64
	       " offline_events=%" PRIu64 " typing_stop_events=%" PRIu64 " error_events=%" PRIu64
	       " other=%" PRIu64 "\n",
	       c_pings, c_recv_other_names[0], c_recv_other_names[1], c_recv_other_names[2],
	       c_recv_other_names[3], c_recv_other_names[4], c_other_events);

	/* The human line. */
	printf("%s %s: %d/%d connected at %.0f/s", opt.label, mode_names[opt.mode], n_connected,
	       opt.clients, connect_rate);
	if (opt.mode == MODE_IDLE) {
		if (rss0 > 0 && rss1 > 0 && n_connected)
			printf(", server RSS %ld -> %ld kB = %.0f B per connection",
			       rss0, rss1, (double)(rss1 - rss0) * 1024.0 / n_connected);
	} else {
		printf(", %.0f sends/s, %.0f acks/s, %.0f deliveries/s, lost %" PRId64 " of %" PRIu64,
		       (double)c_sent_window / load_s, (double)c_acked_window / load_s,
		       (double)c_recv_window / load_s, lost, c_expected);
		if (c_ack_err)
			printf(", %" PRIu64 " error acks", c_ack_err);
		if (hist->count)
			printf(", latency p50 %.0f p90 %.0f p99 %.0f max %.0f us",
			       hist_quantile(hist, 0.5), hist_quantile(hist, 0.9),
			       hist_quantile(hist, 0.99), (double)hist->max_ns / 1000.0);
		if (hist_remote->count)
			printf(" (across servers: p50 %.0f p99 %.0f us)", hist_quantile(hist_remote, 0.5),
			       hist_quantile(hist_remote, 0.99));
	}
	printf("; CPU server %.2f s, loadgen %.2f s over %.1f s\n", scpu, lcpu, load_s);
	if (n_connected < opt.clients || n_closed_late)
		printf("%s: WARNING %d clients never connected, %d dropped later (first reason: %s)\n",
		       opt.label, opt.clients - n_connected, n_closed_late,
		       fail_reason_first ? fail_reason_first : "timeout");
	for (int i = 0; i < opt.clients; i++)
		if (clients[i].fd >= 0)
			close(clients[i].fd);
	return n_connected < opt.clients ? 1 : 0;
}
