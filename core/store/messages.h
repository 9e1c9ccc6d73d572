/* messages.h - the message store (SPEC §4) on store.c, in messages.c and
 * edits.c (what becomes of a message after it was sent): messages in a
 * per-conversation sequence, per-recipient status that never goes back,
 * conversation membership, idempotency keys, user profiles and last seen,
 * plugins' annotations. Records are built and read in C so that
 * message:send costs Lua one call; the Lua bindings (parley.store) are
 * lua/store_api.c, and nothing here knows Lua.
 *
 * Writes: each writing call fills one store batch and submits it before it
 * returns; `done(arg, err)` is the batch's completion (store_submit: it runs
 * in the loop thread once the batch is durable, err 0, or failed, err a
 * negative code, and it may be NULL; `arg` is the caller's). A call that
 * refuses (returns a negative code, base/error.h) submits nothing and
 * never calls `done`.
 * Reads: a read the store fails (an LMDB error, store_get's negative code)
 * counts as nothing there, as it always has: a message not found, no
 * status, no members.
 * Memory: what a call hands back in `char *` fields or out-parameters is
 * scratch memory (base/scratch.h), the caller's to scratch_free; pointers
 * into the store (`const` out-parameters) are valid until the next store
 * call. Names (conversation, user, client message ids) are 1 to
 * MESSAGES_NAME_MAX bytes without NUL; message ids are MESSAGES_ID_LEN hex
 * digits. Arguments are the caller's and never kept. For the loop thread. */
#ifndef PARLEY_MESSAGES_H
#define PARLEY_MESSAGES_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define MESSAGES_ID_LEN 16
#define MESSAGES_NAME_MAX 200           /* ids, user ids, conversation ids */
#define MESSAGES_RECIPIENTS_MAX 10000
#define MESSAGES_STATUS_LIST_MAX 1000   /* ids in one messages_set_status */
#define MESSAGES_SYNC_MAX 500
#define MESSAGES_TIME_LEN 25            /* "2026-11-25T23:27:00.123Z" and its NUL */

/* Statuses, in the order they advance. */
enum msg_status { MSG_SENT = 1, MSG_DELIVERED = 2, MSG_READ = 3 };

/* Loads the last message id; call after store_open. Returns 0 (a failed
 * read leaves new ids to the clock alone). */
int messages_init(void);
/* Forgets the caches; the store is closed separately. */
void messages_fini(void);

/* "sent", "delivered", "read" for a level (MSG_SENT for 0: no status yet,
 * and for what is no level); a static string. */
const char *messages_status_name(int level);
/* The level named `s` (an enum msg_status), or 0 when it names none. */
int messages_status_level(const char *s);
/* `ms` since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" into `out`. */
void messages_iso_time(int64_t ms, char out[MESSAGES_TIME_LEN]);

/* ---- sending ---- */

struct msg_new {
	const char *conv, *sender, *type;
	size_t conv_len, sender_len, type_len;
	const char *client_id, *reply_to; /* NULL: none */
	size_t client_id_len, reply_to_len;
	const char *content; /* JSON text */
	size_t content_len;
	const char *sender_json; /* JSON text, or NULL */
	size_t sender_json_len;
	/* NUL-terminated user ids back to back; the sender and names longer
	 * than MESSAGES_NAME_MAX are left out. */
	const char *recipients;
	size_t recipients_len;
};

struct msg_sent {
	char *record; /* the record as clients see it, with "status": scratch */
	size_t record_len;
	char id[MESSAGES_ID_LEN + 1];
	char timestamp[MESSAGES_TIME_LEN];
	uint64_t seq;
};

/* An idempotent retry: when `sender` sent `client_id` before, fills `out`
 * with that message (its status now; out->record is scratch) and submits
 * an empty batch that completes once that message is durable (and fails if
 * it fails); returns 1. Returns 0, doing nothing (`done` never runs), when
 * the pair is new. */
int messages_send_again(const char *sender, size_t slen, const char *client_id, size_t cidlen,
			void (*done)(void *arg, int err), void *arg, struct msg_sent *out);
/* Stores a new message (the next seq of its conversation, a new id, status
 * `sent` for each recipient, the idempotency key when there is a client
 * id) and fills `out` (out->record is scratch). It cannot be refused: the
 * batch is submitted before this returns, and `done` says how it ended. */
void messages_send(const struct msg_new *m, void (*done)(void *arg, int err), void *arg,
		   struct msg_sent *out);

/* ---- reading ---- */

struct msg_view {
	char *record; /* with annotations, "status" and "statuses": scratch */
	size_t record_len;
	char conv[MESSAGES_NAME_MAX + 1], sender[MESSAGES_NAME_MAX + 1];
	size_t conv_len, sender_len;
	uint64_t seq;
	/* The recipients at send time, then those who joined: NUL-terminated
	 * names back to back, scratch (NULL when none). */
	char *recipients;
	size_t recipients_len;
};

/* Reads message `id`: 1 with `out` filled (its record and recipients
 * scratch), or 0 when there is none (`out` zeroed). */
int messages_get(const char *id, size_t idlen, struct msg_view *out);
/* 1 if message `id` exists (pending writes included), else 0. */
int messages_has(const char *id, size_t idlen);
/* A conversation's durable messages with seq after `after`, oldest first,
 * at most `limit` (1..MESSAGES_SYNC_MAX), leaving out those `viewer` (NULL:
 * nobody) deleted for themselves, as JSON: {"messages":[record with
 * annotations, status and statuses, ...], "hasMore": bool}, scratch, of
 * `*len` bytes. Never NULL. */
char *messages_sync(const char *conv, size_t clen, uint64_t after, long limit,
		    const char *viewer, size_t vlen, size_t *len);

/* As messages_sync, backwards: the conversation's durable messages with
 * seq below `before` (UINT64_MAX: the newest), the `limit` nearest it,
 * answered oldest first; "hasMore" says whether older ones exist. Read
 * from the conversation index backwards: the cost is the page's, not the
 * history's. Never NULL. */
char *messages_sync_before(const char *conv, size_t clen, uint64_t before, long limit,
			   const char *viewer, size_t vlen, size_t *len);

/* ---- the inbox (store/inbox.c) ---- */

#define MESSAGES_INBOX_MAX 100      /* conversations in one page */
#define MESSAGES_PREVIEW_CHARS 100  /* characters of a last message shown */

/* A page of `user`'s conversations, latest activity first: those after
 * `before` (a conversation of the inbox; NULL: from the latest), at most
 * `limit` (1..MESSAGES_INBOX_MAX), as JSON {"conversations":[item, ...],
 * "hasMore": bool}, scratch, of `*len` bytes; NULL when `before` is not
 * in the inbox. An item: {"conversationId", "updatedAt" (the last
 * activity), "unreadCount" (the messages the user received there and has
 * not read), "lastMessage": {"messageId", "senderId", "sender"?, "type",
 * "timestamp", "seq", "deleted"?, "preview"} or null}. The inbox holds
 * the conversations the user wrote, received or read in, and those it is
 * a registered member of; messages_send, the reads and
 * messages_set_members keep it in their batches. Durable entries are
 * listed (a scan), each as it is now. */
char *messages_inbox(const char *user, size_t ulen, const char *before, size_t blen, long limit,
		     size_t *len);
/* The item of one conversation of the user's inbox (scratch), or NULL
 * when it is not there. */
char *messages_inbox_item(const char *user, size_t ulen, const char *conv, size_t clen,
			  size_t *len);
/* The items of one conversation for the `n` users `users` (of `ulens`
 * bytes) at once, for conversation:updated: users whose items are the same
 * text share one, so an update costs one encoding per distinct item, not
 * per user. Sets `group[i]` to user i's item (-1: not in its inbox), and
 * `items[g]` (scratch) / `item_lens[g]` for each item; the three arrays are
 * the caller's, of `n` entries. Returns the number of items. */
size_t messages_inbox_items(const char *conv, size_t clen, const char *const *users,
			    const size_t *ulens, size_t n, long *group, char **items,
			    size_t *item_lens);
/* The users whose inbox holds the conversation (durable ones): NUL-
 * terminated names back to back, scratch (NULL, `*len` 0, when none). */
char *messages_participants(const char *conv, size_t clen, size_t *len);

/* ---- statuses ---- */

/* What a status write did to a message. */
struct msg_change {
	char id[MESSAGES_ID_LEN + 1];
	char conv[MESSAGES_NAME_MAX + 1];
	char sender[MESSAGES_NAME_MAX + 1];
	int aggregate_before, aggregate; /* the least status over its recipients */
	int64_t at;                      /* ms */
	int unread_read; /* it was unread in the user's inbox count and is read now */
};

/* Sets `user`'s status of the messages `ids` (`n` ids of `idlens` bytes) to
 * `level` where that advances it, adding the user as a recipient when
 * `open` (a conversation without registered members). With `conv`, a
 * message of another conversation is not found. All or nothing: every id
 * is checked first; on a refusal returns -ENOENT (no such message) or
 * PARLEY_ENOTRECIPIENT with `*refused` the index of the id, and writes
 * nothing (`done` never runs). Otherwise fills `changes[0..n)` (the
 * caller's) and returns 0. */
int messages_set_status(const char *const *ids, const size_t *idlens, size_t n,
			const char *user, size_t ulen, int level, int open, const char *conv,
			size_t clen, void (*done)(void *arg, int err), void *arg,
			struct msg_change *changes, size_t *refused);
/* Marks read every message of the conversation after the user's read
 * cursor up to seq `upto` (UINT64_MAX: all; at most 5000 at a time) and
 * moves the cursor. `*changes` (scratch, `*nchanges` of them; never NULL)
 * are those whose aggregate moved; `*count` is how many messages became
 * read. Not refused: the batch is submitted, empty or not. */
void messages_read_upto(const char *conv, size_t clen, const char *user, size_t ulen,
			uint64_t upto, int open, void (*done)(void *arg, int err), void *arg,
			struct msg_change **changes, size_t *nchanges, int *count);

/* ---- membership ---- */

/* A conversation's members (none: not registered), or a user's
 * conversations: NUL-terminated names back to back, scratch (NULL, `*len`
 * 0, when none). */
char *messages_members(const char *conv, size_t clen, size_t *len);
char *messages_conversations_of(const char *user, size_t ulen, size_t *len);
/* 1 if `user` is a member of `conv`, else 0; `*registered` is 1 when the
 * conversation has members at all, else 0. */
int messages_is_member(const char *conv, size_t clen, const char *user, size_t ulen,
		       int *registered);
/* Replaces the conversation's members with `members` (NUL-terminated
 * names back to back; past MESSAGES_RECIPIENTS_MAX they are left out).
 * Not refused. */
void messages_set_members(const char *conv, size_t clen, const char *members, size_t len,
			  void (*done)(void *arg, int err), void *arg);

/* ---- profiles, last seen, annotations, edits ---- */

/* A user's profile JSON: 1 with `*json` (the store's: valid until the next
 * store call), or 0. */
int messages_profile(const char *user, size_t ulen, const void **json, size_t *len);
/* Replaces the user's profile with `json`. Not refused. */
void messages_set_profile(const char *user, size_t ulen, const char *json, size_t len,
			  void (*done)(void *arg, int err), void *arg);
/* A user's last seen ms: 1 with `*ms`, or 0. */
int messages_last_seen(const char *user, size_t ulen, int64_t *ms);
/* Sets it (a negative `ms` as 0), with no completion to wait for. */
void messages_set_last_seen(const char *user, size_t ulen, int64_t ms);

/* Whether `name` may name an annotation: 0; PARLEY_EBADNAME for an empty,
 * longer than 32 bytes or reserved one (a field of the record: "content",
 * "status", ...); -EINVAL when it is not letters, digits and _. */
int messages_annotation_name(const char *name, size_t nlen);
/* Sets a plugin's field `name` (checked by messages_annotation_name) of
 * message `id` (MESSAGES_ID_LEN bytes) to `json`, or removes it when `json`
 * is NULL; shown with the message by messages_get and messages_sync. Not
 * refused. */
void messages_annotate(const char *id, const char *name, size_t nlen, const char *json,
		       size_t len, void (*done)(void *arg, int err), void *arg);
/* Rewrites message `id`: the new content (JSON) and "editedAt", or, with
 * `content` NULL, a tombstone (content null, "deleted": true). Returns 0
 * with `when` the edit's time, or -ENOENT when there is no such message
 * (nothing submitted, `done` never runs). */
int messages_edit(const char *id, size_t idlen, const char *content, size_t clen,
		  void (*done)(void *arg, int err), void *arg, char when[MESSAGES_TIME_LEN]);
/* Deletes message `id` (MESSAGES_ID_LEN bytes) for `user` only
 * (messages_sync with that viewer leaves it out). Not refused. */
void messages_hide(const char *id, const char *user, size_t ulen,
		   void (*done)(void *arg, int err), void *arg);

#endif
