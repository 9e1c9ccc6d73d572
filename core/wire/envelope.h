/* envelope.h - the plain WebSocket endpoint's frame: a JSON object
 * {"event": NAME, "data": ..., "ack": N} either way, or {"ack": N,
 * "data": ...} answering the other side's request. Its parser and its
 * writers (over json.h), tested and fuzzed alone. */
#ifndef PARLEY_ENVELOPE_H
#define PARLEY_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "wire/json.h"

#define ENVELOPE_NAME_MAX 255

enum envelope_kind {
	ENVELOPE_EVENT,  /* an event, maybe asking for an ack */
	ENVELOPE_REPLY,  /* the answer to the server's ack request `ack` */
};

struct envelope {
	enum envelope_kind kind;
	int64_t ack;               /* -1: none */
	char name[ENVELOPE_NAME_MAX + 1]; /* the event name, unescaped, NUL-terminated */
	size_t name_len;
	struct json_span data;     /* the "data" value, or p == NULL when absent */
};

/* Parses the `len` bytes at `p` (a whole text frame) into `e` (e->data
 * points into `p`). Returns 0, or a negative code: -EBADMSG when it is not
 * one JSON object (invalid JSON included), PARLEY_EBADACK when "ack" is
 * not an integer in 0..2^53, PARLEY_EBADNAME when there is no usable
 * "event" (missing, not a string, empty, longer than ENVELOPE_NAME_MAX);
 * on PARLEY_EBADNAME, e->ack is already set so the error can answer it.
 * `max_depth` bounds JSON nesting. */
int envelope_parse(const char *p, size_t len, int max_depth, struct envelope *e);

/* Room envelope_event_write needs: {"event": the name escaped, ,"data":
 * the data (or null), ,"ack": the id, }. */
#define ENVELOPE_EVENT_MAX(name_len, data_len) \
	(9 + json_escaped_max(name_len) + 8 + ((data_len) > 4 ? (data_len) : 4) + \
	 7 + JSON_UINT_MAX + 1)

/* Writes an event frame into `out` (ENVELOPE_EVENT_MAX bytes):
 *     {"event":NAME,"data":DATA}, or {"event":NAME,"data":DATA,"ack":N}
 * when `ack` is not negative (a request: the client answers with an
 * ENVELOPE_REPLY naming N). `name` is `name_len` bytes of UTF-8, written as
 * a JSON string; `data` is one JSON value written as it is, "null" when
 * NULL or empty. Returns the bytes written (no NUL). */
size_t envelope_event_write(char *out, const char *name, size_t name_len, const char *data,
			    size_t data_len, int64_t ack);

/* Room envelope_reply_write needs. */
#define ENVELOPE_REPLY_MAX(data_len) \
	(7 + JSON_UINT_MAX + 8 + ((data_len) > 4 ? (data_len) : 4) + 1)

/* Writes the answer to the client's request `ack` into `out`
 * (ENVELOPE_REPLY_MAX bytes): {"ack":N,"data":DATA}, `data` as for
 * envelope_event_write. Returns the bytes written (no NUL). */
size_t envelope_reply_write(char *out, uint64_t ack, const char *data, size_t data_len);

#endif
