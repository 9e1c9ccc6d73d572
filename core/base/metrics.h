/* metrics.h - counters for /metrics in the Prometheus text format:
 * connections by transport, events in and out by name, errors by code,
 * protocol errors by kind, and time spent in Lua. */
#ifndef PARLEY_METRICS_H
#define PARLEY_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum metrics_transport { METRICS_POLLING, METRICS_WEBSOCKET, METRICS_PLAIN, METRICS_NTRANSPORTS };

/* A connection of this transport opened (+1) or closed (-1). */
void metrics_connection(enum metrics_transport t, int delta);
/* Moves one open connection from polling to websocket. */
void metrics_upgrade(void);
void metrics_event_in(const char *name, size_t len);
void metrics_event_out(const char *name, size_t len, uint64_t n);
/* An `error` event sent with this status code. */
void metrics_error(int status);
/* An HTTP response with this 4xx/5xx status. */
void metrics_http_error(int status);
/* A malformed packet or request of this kind. */
void metrics_protocol_error(const char *kind);
/* A limit tripped (connections per IP, sockets per user, ...). */
void metrics_limit(const char *which);
/* An event frame was encoded (once per wire format per emit). */
void metrics_encoding(void);
/* Renders every metric; the caller frees the text. */
char *metrics_render(size_t *len);
void metrics_fini(void);

#endif
