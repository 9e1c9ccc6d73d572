/* metrics.h - counters for /metrics in the Prometheus text format:
 * connections by transport, events in and out by name, errors by code,
 * protocol errors by kind; and the values other modules register (time
 * spent in Lua, the store's commits, sockets...). */
#ifndef PARLEY_METRICS_H
#define PARLEY_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum metrics_transport { METRICS_POLLING, METRICS_WEBSOCKET, METRICS_PLAIN, METRICS_NTRANSPORTS };

/* A connection of this transport opened (+1) or closed (-1). */
void metrics_connection(enum metrics_transport t, int delta);
/* Moves one open connection from polling to websocket. */
void metrics_upgrade(void);
/* An event named `name` (copied; client-chosen: past 256 names, the rest
 * count as "_other") came in, or went out to `n` sockets. */
void metrics_event_in(const char *name, size_t len);
void metrics_event_out(const char *name, size_t len, uint64_t n);
/* An `error` event sent with this status code. */
void metrics_error(int status);
/* An HTTP response with this 4xx/5xx status. */
void metrics_http_error(int status);
/* A malformed packet or request of this kind (copied). */
void metrics_protocol_error(const char *kind);
/* A limit tripped (connections per IP, sockets per user, ...; copied). */
void metrics_limit(const char *which);
/* An event frame was encoded (once per wire format per emit). */
void metrics_encoding(void);
/* A value another module keeps and /metrics shows, read as it renders:
 * metrics knows no module. Give exactly one of `count` (printed as an
 * integer), `usec` (microseconds, printed as seconds) or `read` (called).
 * `name` may carry labels ("parley_store_full_total{reason=\"map\"}");
 * `help` and `type` ("counter" or "gauge") head a family, and are NULL for
 * its further series, registered right after it. */
struct metrics_value {
	const char *name, *help, *type;
	const uint64_t *count;
	const uint64_t *usec;
	long long (*read)(void);
	struct metrics_value *next; /* metrics' own */
};
/* Adds `v` (kept by reference: static storage) to what renders, after the
 * values registered before it; registering it again does nothing. */
void metrics_register(struct metrics_value *v);

/* A latency histogram (a Prometheus histogram, in seconds): observed in
 * microseconds, with relaxed atomics, so another thread may observe (the
 * store's writer). Buckets from 100 µs to 2.5 s. */
#define METRICS_BUCKETS 14
struct metrics_histogram {
	const char *name, *help;
	uint64_t bucket[METRICS_BUCKETS + 1]; /* per bucket, not cumulative; the last: +Inf */
	uint64_t count, sum_usec;
	struct metrics_histogram *next; /* metrics' own */
};
/* Adds `h` (static storage, kept by reference) to what renders; again:
 * nothing. */
void metrics_histogram_register(struct metrics_histogram *h);
/* One observation of `usec` microseconds. */
void metrics_observe(struct metrics_histogram *h, uint64_t usec);
/* The loop's time handling a client event named `name` (copied;
 * client-chosen: past 256 names, "_other"), in parley_event_seconds. */
void metrics_observe_event(const char *name, size_t len, uint64_t usec);

/* Renders every metric: a NUL-terminated text of `*len` bytes that the
 * caller frees. Never NULL. */
char *metrics_render(size_t *len);
/* Frees the counters; the registered values stay their modules'. */
void metrics_fini(void);

#endif
