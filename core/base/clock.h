/* clock.h - the event loop every layer runs on (libev on epoll: a wake-up
 * costs what is ready, not what is connected), a monotonic clock, and
 * one-shot timers on the loop's heap. The app makes the loop first and
 * destroys it last. */
#ifndef PARLEY_CLOCK_H
#define PARLEY_CLOCK_H

#include <stdint.h>

#include <ev.h>

/* The loop; NULL outside clock_init .. clock_fini. */
extern struct ev_loop *clock_loop;

/* Makes the loop. Returns 0, or a negative errno (logged): -ENOSYS when
 * epoll is not there, or epoll's own (-EMFILE, -ENOMEM). */
int clock_init(void);
/* Destroys the loop; every watcher on it must be stopped. A no-op without
 * a loop. */
void clock_fini(void);

/* Milliseconds on a monotonic clock. */
int64_t now_ms(void);

/* (Re)arms `t` to call `cb` once, `ms` from now. Our timers are libev's (a
 * heap: O(log n) however many connections have a heartbeat), not lws's. */
void timer_start(ev_timer *t, void (*cb)(struct ev_loop *, ev_timer *, int), double ms);
/* Disarms `t`; a timer that is not armed is left alone. */
void timer_stop(ev_timer *t);

#endif
