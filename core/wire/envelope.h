/* envelope.h - the plain WebSocket endpoint's frame: a JSON object
 * {"event": NAME, "data": ..., "ack": N} either way, or {"ack": N,
 * "data": ...} answering the other side's request; "args": [...] in place
 * of "data" carries several arguments. Its parser and its writers (over
 * json.h), tested and fuzzed alone. */
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
	struct json_span args;     /* the "args" array, or p == NULL when absent */
};

/* Parses the `len` bytes at `p` (a whole text frame) into `e` (e->data
 * points into `p`). Returns 0, or a negative code: -EBADMSG when it is not
 * one JSON object (invalid JSON included), PARLEY_EBADACK when "ack" is
 * not an integer in 0..2^53, PARLEY_EBADNAME when there is no usable
 * "event" (missing, not a string, empty, longer than ENVELOPE_NAME_MAX);
 * -EINVAL when "args" is not an array or comes with "data" (an event's or
 * a reply's arguments are one or the other); on PARLEY_EBADNAME and
 * -EINVAL, e->ack is already set so the error can answer it.
 * `max_depth` bounds JSON nesting. */
int envelope_parse(const char *p, size_t len, int max_depth, struct envelope *e);

/* Room the arguments take: ,"data": and the value (or null), or ,"args":[
 * the list ]. */
#define ENVELOPE_ARGS_MAX(args_len) (9 + ((args_len) > 4 ? (args_len) : 4) + 1)

/* Room envelope_event_write needs: {"event": the name escaped, the
 * arguments, ,"ack": the id, }. */
#define ENVELOPE_EVENT_MAX(name_len, args_len) \
	(9 + json_escaped_max(name_len) + ENVELOPE_ARGS_MAX(args_len) + 7 + JSON_UINT_MAX + 1)

/* Writes an event frame into `out` (ENVELOPE_EVENT_MAX bytes):
 *     {"event":NAME,"data":DATA}, or {"event":NAME,"data":DATA,"ack":N}
 * when `ack` is not negative (a request: the client answers with an
 * ENVELOPE_REPLY naming N). `name` is `name_len` bytes of UTF-8, written as
 * a JSON string. `args` is the JSON of the `nargs` arguments, comma-separated
 * without brackets (as sio_event_write takes them), written as it is: one
 * goes out as "data", none as "data":null (NULL or args_len 0 is none),
 * several as "args":[ARGS] in place of "data". Returns the bytes written
 * (no NUL). */
size_t envelope_event_write(char *out, const char *name, size_t name_len, const char *args,
			    size_t args_len, unsigned nargs, int64_t ack);

/* Room envelope_reply_write needs. */
#define ENVELOPE_REPLY_MAX(args_len) (7 + JSON_UINT_MAX + ENVELOPE_ARGS_MAX(args_len) + 1)

/* Writes the answer to the client's request `ack` into `out`
 * (ENVELOPE_REPLY_MAX bytes): {"ack":N,"data":DATA} or {"ack":N,"args":
 * [ARGS]}, the arguments as for envelope_event_write. Returns the bytes
 * written (no NUL). */
size_t envelope_reply_write(char *out, uint64_t ack, const char *args, size_t args_len,
			    unsigned nargs);

#endif
