/* envelope.c - the plain WebSocket frame, read and written (see
 * envelope.h). */
#include "wire/envelope.h"

#include <string.h>

int envelope_parse(const char *p, size_t len, int max_depth, struct envelope *e)
{
	struct json_span env = { p, len }, name, ack;
	long n;

	e->kind = ENVELOPE_EVENT;
	e->ack = -1;
	e->name_len = 0;
	e->name[0] = '\0';
	e->data.p = NULL;
	e->data.len = 0;
	e->args.p = NULL;
	e->args.len = 0;
	if (json_validate(p, len, max_depth) != JSON_OBJECT)
		return -EBADMSG;
	if (json_object_get(env, "ack", &ack) == 1) {
		uint64_t id;
		if (json_uint(ack, &id) < 0)
			return PARLEY_EBADACK;
		e->ack = (int64_t)id;
	}
	json_object_get(env, "data", &e->data);
	json_object_get(env, "args", &e->args);
	if (json_object_get(env, "event", &name) != 1) {
		if (e->ack < 0)
			return PARLEY_EBADNAME;
		/* {"ack": N, "data": X}: the answer to a server request. */
		e->kind = ENVELOPE_REPLY;
	} else {
		if (json_kind_of(name) != JSON_STRING ||
		    (n = json_string_unescape(name, e->name, sizeof(e->name))) <= 0)
			return PARLEY_EBADNAME;
		e->name_len = (size_t)n;
	}
	/* One way to give the arguments, so that none is silently dropped. */
	if (e->args.p && (json_kind_of(e->args) != JSON_ARRAY || e->data.p))
		return -EINVAL;
	return 0;
}

/* Appends the `n` bytes at `p` to `out` and returns where they end. */
static char *put(char *out, const char *p, size_t n)
{
	memcpy(out, p, n);
	return out + n;
}

/* The frame's arguments: one as "data", none as "data": null (an empty
 * value would not be JSON), several as "args": [...]. */
static char *put_args(char *out, const char *args, size_t len, unsigned nargs)
{
	if (!args || !len)
		return put(out, ",\"data\":null", 12);
	if (nargs <= 1)
		return put(put(out, ",\"data\":", 8), args, len);
	out = put(put(out, ",\"args\":[", 9), args, len);
	*out++ = ']';
	return out;
}

size_t envelope_event_write(char *out, const char *name, size_t name_len, const char *args,
			    size_t args_len, unsigned nargs, int64_t ack)
{
	char *p = put(out, "{\"event\":", 9);

	p += json_escape(name, name_len, p);
	p = put_args(p, args, args_len, nargs);
	if (ack >= 0) {
		p = put(p, ",\"ack\":", 7);
		p += json_uint_write(p, (uint64_t)ack);
	}
	*p++ = '}';
	return (size_t)(p - out);
}

size_t envelope_reply_write(char *out, uint64_t ack, const char *args, size_t args_len,
			    unsigned nargs)
{
	char *p = put(out, "{\"ack\":", 7);

	p += json_uint_write(p, ack);
	p = put_args(p, args, args_len, nargs);
	*p++ = '}';
	return (size_t)(p - out);
}
