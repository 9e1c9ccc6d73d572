/* files.h - the files PARLEY_STATIC serves: lws serves them (types, ETags,
 * ranges) through an open of ours that keeps each one inside the folder. */
#ifndef PARLEY_FILES_H
#define PARLEY_FILES_H

#include <libwebsockets.h>

/* Puts our open in place of lws's for `ctx`: from then on a file lws asks
 * for is opened only if it resolves inside `folder` (the mount's origin,
 * which must outlive the context), symlinks included, and only if it is a
 * regular file or a directory. Anything else lws is refused (it answers
 * 404), logged and counted in parley_protocol_errors_total. */
void files_init(struct lws_context *ctx, const char *folder);

#endif
