/* server.h - the app's server: it wires the layers together at start
 * (settings, loop, lws context, listener, routes), runs the loop and,
 * between its iterations, writes what was queued, frees what was closed and
 * acts on signals (reload, the drain), and takes everything down at the
 * end. */
#ifndef PARLEY_SERVER_H
#define PARLEY_SERVER_H

/* Starts listening with the settings. Returns 0, or a negative code
 * (logged): clock_init's, -ENOMEM when lws makes no context, ws_listen's
 * (-EADDRINUSE, ...). server_fini and server_loop_fini clean up either
 * way. */
int server_start(void);
/* Serves until server_stop(): runs the event loop, and between iterations
 * writes what was queued, frees what was closed and reloads on request. */
void server_run(void);
/* Both are safe to call from a signal handler. */
void server_stop(void);
void server_request_reload(void);
/* Closes every connection still open (the drain may have left some) and
 * the lws context; the loop stays for what still has to run (the store's
 * last completions, Lua's teardown). */
void server_fini(void);
/* Destroys the event loop, last of all. */
void server_loop_fini(void);

#endif
