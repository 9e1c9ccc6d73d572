/* sessions.h - connection state recovery across nodes (cluster mode): each
 * node keeps in Redis what a recovery on another node needs, written as it
 * goes (so that a node killed with -9 has written it already): its
 * recoverable sockets (pid, user, namespace, rooms with their join
 * offsets) and a bounded copy of its recovery log (hub/recovery.c). A
 * client that comes back elsewhere with its pid and offset is claimed
 * there atomically (a Lua script), gets its socket id, rooms and missed
 * events, and the node that held it lets it go. Uses cluster.c's commands
 * and channels, hub's sockets. docs/cluster.md says why and what it costs. */
#ifndef PARLEY_SESSIONS_H
#define PARLEY_SESSIONS_H

/* Starts following the sockets (cluster mode on, recovery on); a no-op
 * otherwise. After cluster_open. */
void sessions_open(void);
/* Stops; before cluster_close. Safe when never opened. */
void sessions_close(void);

#endif
