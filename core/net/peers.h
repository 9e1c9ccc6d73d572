/* peers.h - connections per peer address (PARLEY_MAX_CONNS_PER_IP): a new
 * TCP connection from an address that has as many as the limit already is
 * refused at accept. Off (and free) when the limit is 0. */
#ifndef PARLEY_PEERS_H
#define PARLEY_PEERS_H

#include <stddef.h>
#include <sys/socket.h>

/* Counts connections per address from now on, `limit` at most (0: off). */
void peers_init(int limit);
void peers_fini(void);
/* At accept: 0 to let the connection in, or -ECONNREFUSED when its address
 * has `limit` already (counted, logged). */
int peers_admit(const struct sockaddr_storage *addr);
/* An accepted connection, known by `owner` (our struct ws, or lws's wsi),
 * opened from `addr` / is gone. Closing one not counted is a no-op. */
void peers_opened(const void *owner, const struct sockaddr_storage *addr);
void peers_closed(const void *owner);
/* The peer address of socket `fd` as text into `out`, or "?" when it cannot
 * be read. */
void peers_address(int fd, char *out, size_t outlen);

#endif
