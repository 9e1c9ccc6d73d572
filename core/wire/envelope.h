/* envelope.h - the plain WebSocket endpoint's frame: a JSON object
 * {"event": NAME, "data": ..., "ack": N} from a client, or {"ack": N,
 * "data": ...} answering a server request. A parser only (json.h), so that
 * it can be tested and fuzzed alone. */
#ifndef PARLEY_ENVELOPE_H
#define PARLEY_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "wire/json.h"

#define ENVELOPE_NAME_MAX 255

enum envelope_kind {
	ENVELOPE_EVENT,  /* an event, maybe asking for an ack */
	ENVELOPE_REPLY,  /* the answer to the server's ack request `ack` */
};

enum envelope_error {
	ENVELOPE_OK = 0,
	ENVELOPE_NOT_OBJECT = -1, /* not one JSON object (invalid JSON included) */
	ENVELOPE_BAD_ACK = -2,    /* "ack" is not an integer in 0..2^53 */
	ENVELOPE_BAD_EVENT = -3,  /* no usable "event" (missing, not a string, empty, too long) */
};

struct envelope {
	enum envelope_kind kind;
	int64_t ack;               /* -1: none */
	char name[ENVELOPE_NAME_MAX + 1]; /* the event name, unescaped, NUL-terminated */
	size_t name_len;
	struct json_span data;     /* the "data" value, or p == NULL when absent */
};

/* Parses the `len` bytes at `p` (a whole text frame) into `e`. Returns
 * ENVELOPE_OK or an envelope_error; on BAD_EVENT, e->ack is already set so
 * the error can answer it. `max_depth` bounds JSON nesting. */
int envelope_parse(const char *p, size_t len, int max_depth, struct envelope *e);

#endif
