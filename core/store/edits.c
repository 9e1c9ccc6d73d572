/* edits.c - what becomes of a stored message after it was sent (see
 * messages.h): plugins' annotations (reactions and the like, shown with
 * the message), edits, deletion for everyone (a tombstone) and deletion
 * for one user. Keys and values (store/messages.c has the whole map):
 *   annot     id "\0" name -> JSON: a plugin's field of the message
 *   hidden    id "\0" user -> "": deleted for that user only
 *   messages  id -> the record rewritten by an edit, its recipients kept
 * Uses store.c, record.c and wire/json.c. */
#include "store/messages.h"

#include <errno.h>
#include <string.h>

#include "base/error.h"
#include "base/scratch.h"
#include "store/record.h"
#include "store/store.h"
#include "wire/json.h"

#define ID_LEN MESSAGES_ID_LEN
#define NAME_MAX_BYTES MESSAGES_NAME_MAX

/* Fields of a record an annotation may not take. */
static int reserved_name(const char *name, size_t len)
{
	static const char *const names[] = {
		"messageId", "conversationId", "senderId", "clientMessageId", "type", "content",
		"replyTo", "timestamp", "seq", "sender", "status", "statuses", "editedAt", "deleted",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
			return 1;
	return 0;
}

int messages_annotation_name(const char *name, size_t nlen)
{
	if (nlen == 0 || nlen > 32 || reserved_name(name, nlen))
		return PARLEY_EBADNAME;
	for (size_t i = 0; i < nlen; i++)
		if (!(name[i] == '_' || (name[i] >= '0' && name[i] <= '9') ||
		      (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z')))
			return -EINVAL;
	return 0;
}

void messages_annotate(const char *id, const char *name, size_t nlen, const char *json,
		       size_t len, void (*done)(void *arg, int err), void *arg)
{
	char key[ID_LEN + 1 + 33];
	struct store_batch *b = store_batch_new();
	size_t klen = record_key(key, sizeof(key), id, ID_LEN, name, nlen);

	if (json)
		store_put(b, STORE_ANNOT, key, klen, json, len);
	else
		store_del(b, STORE_ANNOT, key, klen);
	store_submit(b, done, arg);
}

int messages_edit(const char *id, size_t idlen, const char *content, size_t clen,
		  void (*done)(void *arg, int err), void *arg, char when[MESSAGES_TIME_LEN])
{
	struct record_buf json = { 0 }, value = { 0 };
	struct record r;
	struct json_iter it;
	struct json_span k, v;
	int first = 1;

	if (idlen != ID_LEN || record_load(id, ID_LEN, &r) != 1)
		return -ENOENT;
	record_iso_time(record_now_ms(), when);
	record_buf_put(&json, "{", 1);
	json_iter_begin((struct json_span){ r.json, r.json_len }, &it);
	while (json_object_next(&it, &k, &v) == 1) {
		char name[32];
		long n = json_string_unescape(k, name, sizeof(name));
		if (n > 0 && (strcmp(name, "content") == 0 || strcmp(name, "editedAt") == 0 ||
			      strcmp(name, "deleted") == 0))
			continue;
		if (!first)
			record_buf_put(&json, ",", 1);
		first = 0;
		record_buf_put(&json, k.p, k.len);
		record_buf_put(&json, ":", 1);
		record_buf_put(&json, v.p, v.len);
	}
	if (content) {
		record_buf_str(&json, ",\"content\":");
		record_buf_put(&json, content, clen);
		record_buf_str(&json, ",\"editedAt\":\"");
		record_buf_str(&json, when);
		record_buf_str(&json, "\"}");
	} else {
		record_buf_str(&json, ",\"content\":null,\"deleted\":true,\"editedAt\":\"");
		record_buf_str(&json, when);
		record_buf_str(&json, "\"}");
	}
	struct store_batch *b = store_batch_new();
	record_value(&value, json.p, json.len, r.recipients, r.recipients_len);
	store_put(b, STORE_MESSAGES, id, ID_LEN, value.p, value.len);
	store_submit(b, done, arg);
	scratch_free(json.p);
	scratch_free(value.p);
	return 0;
}

void messages_hide(const char *id, const char *user, size_t ulen,
		   void (*done)(void *arg, int err), void *arg)
{
	char key[ID_LEN + 1 + NAME_MAX_BYTES];
	struct store_batch *b = store_batch_new();

	store_put(b, STORE_HIDDEN, key, record_key(key, sizeof(key), id, ID_LEN, user, ulen), "", 0);
	store_submit(b, done, arg);
}

