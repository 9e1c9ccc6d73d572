/* files.c - the open lws's file mount goes through (see files.h). lws's own
 * open follows any symlink, so a link in the folder to /etc, or to a folder
 * outside it, was served. Ours resolves the path in the kernel, beneath a
 * descriptor of the folder (openat2 with RESOLVE_BENEATH, Linux 5.6): the
 * file checked is the file served, with no window between a check and the
 * open for a link to be swapped in. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "net/files.h"
#include "base/log.h"
#include "base/metrics.h"

static const char *folder;
static size_t folder_len;

/* Why a file was refused: logged, and counted as a protocol error. */
static void refuse(const char *rel, const char *why, const char *kind)
{
	metrics_protocol_error(kind);
	log_info("static file \"%.200s\" %s (PARLEY_STATIC): refused, 404", rel, why);
}

/* lws asks for "<folder>/<path from the URL>" (and, for a directory, that
 * plus "/index.html"); it frees what we return with its own close, which
 * calls free() and close(). */
static lws_fop_fd_t files_open(const struct lws_plat_file_ops *fops, const char *filename,
			       const char *vpath, lws_fop_flags_t *flags)
{
	/* RESOLVE_BENEATH: no "..", absolute path or symlink (relative or
	 * absolute) may take the resolution out of the folder, and an absolute
	 * link is refused even when it points inside. O_NONBLOCK: a FIFO must
	 * not hold the loop in open(). */
	struct open_how how = {
		.flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	const char *rel = filename + folder_len;
	lws_fop_fd_t f = NULL;
	int dir = -1, fd = -1;
	struct stat st;

	(void)vpath;
	/* Nothing else of parley opens files through lws. */
	if (strncmp(filename, folder, folder_len) != 0 || *rel != '/') {
		refuse(filename, "is not under the folder", "static_outside_folder");
		goto out;
	}
	while (*rel == '/')
		rel++;
	if (!*rel)
		rel = ".";
	/* The folder by name at each request: a deploy that swaps it (a link
	 * moved to a new release) is served from the new one. */
	dir = open(folder, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		log_warn("static files: cannot open the folder %s: %s", folder, strerror(errno));
		goto out;
	}
	fd = (int)syscall(SYS_openat2, dir, rel, &how, sizeof(how));
	if (fd < 0) {
		if (errno == EXDEV || errno == ELOOP)
			refuse(rel, "resolves outside the folder", "static_outside_folder");
		else if (errno == ENOSYS || errno == EPERM)
			log_error("static files need openat2 (Linux 5.6 or later): %s", strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0)
		goto out;
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		refuse(rel, "is not a regular file", "static_not_a_file");
		goto out;
	}
	/* lws frees it with free(). */
	f = malloc(sizeof(*f));
	if (!f)
		goto out;
	f->fd = fd;
	f->fops = fops;
	f->filesystem_priv = NULL;
	f->pos = 0;
	f->len = (lws_filepos_t)st.st_size;
	f->flags = *flags;
	f->mod_time = 0;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	if (dir >= 0)
		close(dir);
	return f;
}

void files_init(struct lws_context *ctx, const char *origin)
{
	/* The context's first file ops are the platform's, which the mount
	 * uses (no zip or custom ops are set up): only its open changes. */
	struct lws_plat_file_ops *fops = lws_get_fops(ctx);

	folder = origin;
	folder_len = strlen(origin);
	fops->LWS_FOP_OPEN = files_open;
}
