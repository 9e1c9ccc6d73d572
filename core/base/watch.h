/* watch.h - hot reload on a file change: inotify on the directories of the
 * loaded scripts and plugins; once changes to .lua files have been quiet for
 * a moment, the callback it was given runs (the server then reloads between
 * loop iterations, like on SIGHUP). */
#ifndef PARLEY_WATCH_H
#define PARLEY_WATCH_H

struct ev_loop;

/* Starts watching (nothing yet) on `loop`; `on_change` runs in the loop
 * once changed .lua files have been quiet for a moment. Returns 0, or
 * inotify's negative errno (-EMFILE: the user's instances are used up),
 * logged as a warning: reload then works by SIGHUP only, and watch_file
 * does nothing. */
int watch_init(struct ev_loop *loop, void (*on_change)(void));
/* Watches the directory that holds `file` too (idempotent; `file` is not
 * kept). A directory that cannot be watched is logged and left out. */
void watch_file(const char *file);
/* Stops watching; a no-op when watch_init failed or never ran. */
void watch_fini(void);

#endif
