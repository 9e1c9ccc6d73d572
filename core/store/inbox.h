/* inbox.h - each user's conversations, latest activity first, with the
 * user's unread count: an index the message store (messages.c) keeps in
 * the batches of the writes it follows (a message, a read, a change of
 * members), so it commits, or fails, with them. The answers are
 * messages.h's (messages_inbox, messages_inbox_item). For store/ only. */
#ifndef PARLEY_INBOX_H
#define PARLEY_INBOX_H

#include <stddef.h>
#include <stdint.h>

struct store_batch;

/* A message of id number `at` (its hex id read as a number: its time in ms
 * << 20, then a counter): the conversation moves to `at` in the inbox
 * of every participant (those it had, the sender, the recipients: NUL-
 * terminated names back to back), and each recipient's unread count grows
 * by one. */
void inbox_message(struct store_batch *b, const char *conv, size_t clen, const char *sender,
		   size_t slen, const char *recipients, size_t rlen, uint64_t at);
/* `user` read in the conversation: `n` messages it was counted unread for
 * became read (its count goes down by that, never below 0), and the
 * conversation is in its inbox from now on. */
void inbox_read(struct store_batch *b, const char *conv, size_t clen, const char *user,
		size_t ulen, uint32_t n);
/* The conversation's members became `members` (NUL-terminated names back
 * to back; none: it is open again, and the inboxes stay): each member's
 * inbox holds it, and the inbox of anyone else who had it no longer does. */
void inbox_members(struct store_batch *b, const char *conv, size_t clen, const char *members,
		   size_t len);

#endif
