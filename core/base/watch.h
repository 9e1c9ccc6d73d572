/* watch.h - hot reload on a file change: inotify on the directories of the
 * loaded scripts and plugins; once changes to .lua files have been quiet for
 * a moment, the server reloads (between loop iterations, like SIGHUP). */
#ifndef PARLEY_WATCH_H
#define PARLEY_WATCH_H

struct ev_loop;

/* Starts watching (nothing yet). Returns 0, or -1 (logged; reload then
 * works by SIGHUP only). */
int watch_init(struct ev_loop *loop);
/* Watches the directory that holds `file` too (idempotent). */
void watch_file(const char *file);
void watch_fini(void);

#endif
