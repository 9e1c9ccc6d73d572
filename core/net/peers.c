/* peers.c - connections per peer address (see peers.h): a count per address,
 * and which address each open connection came from. */
#include "net/peers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/map.h"
#include "base/metrics.h"

static int limit;
static struct map counts; /* address text -> (uintptr_t) connections */
static struct map owners; /* owner pointer bytes -> address text (malloc'd) */

void peers_init(int max)
{
	limit = max;
	map_init(&counts);
	map_init(&owners);
}

void peers_fini(void)
{
	struct map_iter it;
	struct map_entry *e;

	map_iter_init(&it, &owners);
	while ((e = map_next(&it)))
		free(e->value);
	map_fini(&owners);
	map_fini(&counts);
}

/* The address as text, IPv4-mapped IPv6 written as IPv4. */
static int address_text(const struct sockaddr_storage *a, char out[INET6_ADDRSTRLEN])
{
	if (a->ss_family == AF_INET)
		return inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, out,
				 INET6_ADDRSTRLEN) ? 0 : -1;
	if (a->ss_family == AF_INET6) {
		const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(v6))
			return inet_ntop(AF_INET, &v6->s6_addr[12], out, INET6_ADDRSTRLEN) ? 0 : -1;
		return inet_ntop(AF_INET6, v6, out, INET6_ADDRSTRLEN) ? 0 : -1;
	}
	return -1;
}

int peers_admit(const struct sockaddr_storage *addr)
{
	char ip[INET6_ADDRSTRLEN];
	uintptr_t n;

	if (limit <= 0 || address_text(addr, ip) < 0)
		return 0;
	n = (uintptr_t)map_get(&counts, ip, strlen(ip));
	if (n < (uintptr_t)limit)
		return 0;
	metrics_limit("max_conns_per_ip");
	log_info("%s has %d connections (PARLEY_MAX_CONNS_PER_IP): connection refused", ip, limit);
	return -ECONNREFUSED;
}

void peers_opened(const void *owner, const struct sockaddr_storage *addr)
{
	char ip[INET6_ADDRSTRLEN];
	size_t iplen;

	if (limit <= 0 || address_text(addr, ip) < 0)
		return;
	iplen = strlen(ip);
	map_put(&counts, ip, iplen, (void *)((uintptr_t)map_get(&counts, ip, iplen) + 1));
	map_put(&owners, (const char *)&owner, sizeof(owner), xstrdup(ip));
}

void peers_closed(const void *owner)
{
	char *ip;
	uintptr_t n;

	if (limit <= 0 || !(ip = map_del(&owners, (const char *)&owner, sizeof(owner))))
		return;
	n = (uintptr_t)map_get(&counts, ip, strlen(ip));
	if (n > 1)
		map_put(&counts, ip, strlen(ip), (void *)(n - 1));
	else
		map_del(&counts, ip, strlen(ip));
	free(ip);
}

void peers_address(int fd, char *out, size_t outlen)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	char ip[INET6_ADDRSTRLEN];

	/* As lws writes it for the HTTP side: IPv4 on the dual-stack socket
	 * reads "::ffff:a.b.c.d" there too. */
	if (getpeername(fd, (struct sockaddr *)&addr, &len) < 0 ||
	    !inet_ntop(addr.ss_family, addr.ss_family == AF_INET6 ?
			       (const void *)&((struct sockaddr_in6 *)&addr)->sin6_addr :
			       (const void *)&((struct sockaddr_in *)&addr)->sin_addr,
		       ip, sizeof(ip)))
		snprintf(out, outlen, "?");
	else
		snprintf(out, outlen, "%s", ip);
}
