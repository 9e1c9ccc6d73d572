/* peers.h - connections per peer address (PARLEY_MAX_CONNS_PER_IP): a new
 * TCP connection from an address that has as many as the limit already is
 * refused at accept. Off (and free) when the limit is 0. */
#ifndef PARLEY_PEERS_H
#define PARLEY_PEERS_H

#include <sys/socket.h>

#include <libwebsockets.h>

void peers_init(int limit);
void peers_fini(void);
/* At accept: 0 to let the connection in, -1 to refuse it (counted, logged). */
int peers_admit(const struct sockaddr_storage *addr);
/* The accepted connection's wsi exists / is gone. */
void peers_opened(struct lws *wsi);
void peers_closed(struct lws *wsi);

#endif
