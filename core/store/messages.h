/* messages.h - the message store (SPEC §4) on store.c: messages in a
 * per-conversation sequence, per-recipient status that never goes back,
 * conversation membership, idempotency keys, user profiles and last seen;
 * and the host functions that give Lua parley.store. Records are built and
 * read in C so that message:send costs Lua one call. */
#ifndef PARLEY_MESSAGES_H
#define PARLEY_MESSAGES_H

#include <lua.h>

/* Statuses, in the order they advance. */
enum msg_status { MSG_SENT = 1, MSG_DELIVERED = 2, MSG_READ = 3 };

/* Loads the last message id; call after store_open. Returns 0 or -1. */
int messages_init(void);
void messages_fini(void);

/* Adds the store_* host functions to the table at the top of the stack. */
void messages_register(lua_State *L);

#endif
