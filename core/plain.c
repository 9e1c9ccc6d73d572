/* plain.c - the plain WebSocket endpoint: JSON text frames
 * {"event": NAME, "data": ..., "ack": N} both ways, one socket per
 * connection, authenticated by the same connect hooks as Socket.IO. */
#include <string.h>

#include "alloc.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "script.h"
#include "server.h"

#define JSON_MAX_DEPTH 32

/* The envelope's "data" as a one-element argument array ("[]" without it),
 * the shape Socket.IO events and acks have. The caller frees it. */
static char *data_as_args(struct json_span env, size_t *len)
{
	struct json_span data;
	char *args;

	if (json_object_get(env, "data", &data) != 1) {
		*len = 2;
		return xstrdup("[]");
	}
	args = xmalloc(data.len + 2);
	args[0] = '[';
	memcpy(args + 1, data.p, data.len);
	args[data.len + 1] = ']';
	*len = data.len + 2;
	return args;
}

int plain_on_open(struct conn *c, struct nsp *n)
{
	struct client *cl = client_new(c, n);
	char msg[256];
	int code = 0;

	if (script_connect(cl, NULL, 0, &code, msg, sizeof(msg)) == 0) {
		script_connected(cl);
		return 0;
	}
	/* Refused: say why in an error frame, then close with 4000 + status. */
	client_error(cl, code, msg, -1);
	client_free(cl, NULL);
	conn_close_after_flush(c, 4000 + (code >= 100 && code < 1000 ? code : 401), msg);
	return -1;
}

void plain_on_message(struct conn *c, const char *p, size_t len)
{
	struct client *cl = c->clients;
	struct json_span env = { p, len }, name, ack;
	char namebuf[256];
	int64_t ack_id = -1;
	long nlen;

	if (!cl || c->close_code)
		return;
	if (json_validate(p, len, JSON_MAX_DEPTH) != JSON_OBJECT) {
		metrics_protocol_error("plain_bad_json");
		client_error(cl, 400, "invalid JSON: expected {\"event\": NAME, \"data\": ...}", -1);
		return;
	}
	if (json_object_get(env, "ack", &ack) == 1) {
		uint64_t id;
		if (json_uint(ack, &id) < 0) {
			metrics_protocol_error("plain_bad_ack");
			client_error(cl, 400, "ack must be a non-negative integer", -1);
			return;
		}
		ack_id = (int64_t)id;
	}
	if (json_object_get(env, "event", &name) != 1 && ack_id >= 0) {
		/* {"ack": N, "data": X}: the answer to a server request. */
		size_t alen;
		char *args = data_as_args(env, &alen);
		script_ack(cl, (uint64_t)ack_id, args, alen, NULL, 0, NULL);
		free(args);
		return;
	}
	if (json_object_get(env, "event", &name) != 1 || json_kind_of(name) != JSON_STRING ||
	    (nlen = json_string_unescape(name, namebuf, sizeof(namebuf))) <= 0) {
		metrics_protocol_error("plain_bad_event");
		client_error(cl, 400, "event must be a non-empty string", ack_id);
		return;
	}
	size_t alen;
	char *args = data_as_args(env, &alen);
	script_event(cl, namebuf, (size_t)nlen, args, alen, NULL, 0, ack_id);
	free(args);
}
