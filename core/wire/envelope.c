/* envelope.c - the plain WebSocket frame (see envelope.h). */
#include "wire/envelope.h"

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
	if (json_validate(p, len, max_depth) != JSON_OBJECT)
		return ENVELOPE_NOT_OBJECT;
	if (json_object_get(env, "ack", &ack) == 1) {
		uint64_t id;
		if (json_uint(ack, &id) < 0)
			return ENVELOPE_BAD_ACK;
		e->ack = (int64_t)id;
	}
	json_object_get(env, "data", &e->data);
	if (json_object_get(env, "event", &name) != 1) {
		if (e->ack < 0)
			return ENVELOPE_BAD_EVENT;
		/* {"ack": N, "data": X}: the answer to a server request. */
		e->kind = ENVELOPE_REPLY;
		return ENVELOPE_OK;
	}
	if (json_kind_of(name) != JSON_STRING ||
	    (n = json_string_unescape(name, e->name, sizeof(e->name))) <= 0)
		return ENVELOPE_BAD_EVENT;
	e->name_len = (size_t)n;
	return ENVELOPE_OK;
}
