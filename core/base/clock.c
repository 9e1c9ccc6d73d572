/* clock.c - the event loop, the clock and timers (see clock.h). */
#include "base/clock.h"

#include <errno.h>
#include <time.h>

#include "base/log.h"

struct ev_loop *clock_loop;

int clock_init(void)
{
	errno = 0;
	clock_loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
	if (!clock_loop) {
		/* libev says nothing: errno is epoll_create's, or none when the
		 * backend is missing. */
		int err = errno ? -errno : -ENOSYS;
		log_error("cannot create the event loop (epoll)");
		return err;
	}
	return 0;
}

void clock_fini(void)
{
	if (clock_loop)
		ev_loop_destroy(clock_loop);
	clock_loop = NULL;
}

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void timer_start(ev_timer *t, void (*cb)(struct ev_loop *, ev_timer *, int), double ms)
{
	ev_timer_stop(clock_loop, t);
	ev_timer_init(t, cb, ms / 1000.0, 0.);
	ev_timer_start(clock_loop, t);
}

void timer_stop(ev_timer *t)
{
	ev_timer_stop(clock_loop, t);
}
