/* link.h - one connection to Redis on the loop (cluster mode): a
 * non-blocking connect, commands written as the socket takes them, every
 * reply handed to the owner in the order it comes, a PING now and then to
 * find a peer that went silent, and a reconnect with backoff (100 ms
 * doubling to 5 s) whenever the connection goes. It drives hiredis's reader
 * and writer itself rather than hiredis's async layer: that layer (0.14)
 * knows only SUBSCRIBE and PSUBSCRIBE as push modes, and asserts on the
 * pushes of sharded pub/sub (SSUBSCRIBE). Every function is for the loop
 * thread. */
#ifndef PARLEY_LINK_H
#define PARLEY_LINK_H

#include <stddef.h>

#include <hiredis/hiredis.h>

/* Where Redis is: a TCP address (`host` a numeric IP: nothing resolves a
 * name on the loop) or a Unix socket `path`; the database to SELECT. */
struct link_addr {
	char host[64];
	int port;
	char path[256]; /* non-empty: a Unix socket */
	int db;
};

/* What a link tells its owner. None of them may free the link. */
struct link_ops {
	/* Connected, first or again: what the owner sends now goes first. */
	void (*on_up)(void *arg);
	/* A reply or a push (valid during the call; the PONGs of the link's own
	 * PINGs are not handed over). */
	void (*on_reply)(void *arg, const redisReply *r);
	/* The connection went, or a connect failed, for `why` (static or the
	 * link's own text, valid during the call); the reconnect is scheduled. */
	void (*on_down)(void *arg, const char *why);
};

struct link;

/* A link named `name` (for the logs: "publish", "subscribe") to `a`, which
 * starts connecting at once. Never NULL. */
struct link *link_new(const struct link_addr *a, const char *name, const struct link_ops *ops,
		      void *arg);
/* Closes the connection and frees the link. NULL is a no-op. */
void link_free(struct link *l);
/* 1 while connected, else 0. */
int link_is_up(const struct link *l);
/* Queues a command (its `argc` arguments copied). Returns 0, or
 * PARLEY_EUNAVAILABLE when the link is not up (nothing is queued: what a
 * link down would send is the owner's to send again on_up). */
int link_send(struct link *l, int argc, const char **argv, const size_t *lens);
/* Bytes queued and not yet written to the socket. */
size_t link_backlog(const struct link *l);

#endif
