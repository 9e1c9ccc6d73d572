/* watch.c - hot reload on a file change (see watch.h): one inotify
 * descriptor on the loop, a watch per directory of a loaded file, and a
 * quiet period so that an editor's several writes make one reload. */
#include "base/watch.h"

#include <errno.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <ev.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/map.h"

/* Changes are gathered until none has come for this long. */
#define QUIET_MS 150

static int fd = -1;
static struct ev_loop *loop;
static ev_io readable;
static ev_timer quiet;
static struct map dirs; /* directory -> (void *)(intptr_t)(wd + 1) */
/* Names of watched files that do not end in .lua (a config file named
 * parley.conf, say): a change to one counts too. */
static struct map names;
static void (*changed)(void);

static void on_quiet(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l;
	(void)t;
	(void)revents;
	log_info("script or config files changed: reloading");
	changed();
}

static int is_lua(const char *name, size_t len)
{
	return len > 4 && strcmp(name + len - 4, ".lua") == 0;
}

static void on_readable(struct ev_loop *l, ev_io *w, int revents)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	int relevant = 0;

	(void)l;
	(void)w;
	(void)revents;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;
			/* Editors' swap and backup files are not scripts. */
			if (e->len && (is_lua(e->name, strlen(e->name)) ||
				       map_get(&names, e->name, strlen(e->name))))
				relevant = 1;
			p += sizeof(*e) + e->len;
		}
	}
	if (relevant) {
		/* From the last change: each one starts the quiet period again. */
		ev_timer_stop(loop, &quiet);
		ev_timer_init(&quiet, on_quiet, QUIET_MS / 1000.0, 0.);
		ev_timer_start(loop, &quiet);
	}
}

int watch_init(struct ev_loop *l, void (*on_change)(void))
{
	loop = l;
	changed = on_change;
	map_init(&dirs);
	map_init(&names);
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0) {
		int err = -errno;
		log_warn("cannot watch script files (%s): reload with SIGHUP", strerror(-err));
		return err;
	}
	ev_io_init(&readable, on_readable, fd, EV_READ);
	ev_io_start(loop, &readable);
	return 0;
}

void watch_file(const char *file)
{
	const char *slash = strrchr(file, '/');
	char dir[4096];
	size_t len = slash ? (size_t)(slash - file) : 1;
	int wd;

	if (fd < 0 || len >= sizeof(dir))
		return;
	if (!is_lua(file, strlen(file))) {
		const char *name = slash ? slash + 1 : file;
		if (*name && !map_get(&names, name, strlen(name)))
			map_put(&names, name, strlen(name), (void *)1);
	}
	memcpy(dir, slash ? file : ".", len);
	dir[len] = '\0';
	if (map_get(&dirs, dir, len))
		return;
	/* Saved in place, or written beside and renamed over, or new. */
	wd = inotify_add_watch(fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE);
	if (wd < 0) {
		log_warn("cannot watch %s: %s", dir, strerror(errno));
		return;
	}
	map_put(&dirs, dir, len, (void *)(intptr_t)(wd + 1));
}

void watch_fini(void)
{
	if (fd >= 0) {
		ev_io_stop(loop, &readable);
		ev_timer_stop(loop, &quiet);
		close(fd);
		fd = -1;
	}
	map_fini(&dirs);
	map_fini(&names);
}
