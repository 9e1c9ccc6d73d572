/* log.h - leveled logging to stderr, one line per record, with a timestamp.
 * The level comes from PARLEY_LOG (error, warn, info, debug). */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_threshold;

/* The level named "error", "warn", "info" or "debug" (an enum log_level),
 * or -EINVAL for any other name. */
int log_level_parse(const char *name);
/* 1: each record is one JSON object on a line (PARLEY_LOG_FORMAT=json):
 * {"time","level","module","socket","user","message"}, the last three
 * present when known; a message's newlines (a stack trace) stay inside it.
 * 0: text, "time level message", a message's further lines indented. */
extern int log_json;

/* Writes one record at `level` whatever the threshold (the macros below
 * check it first). A record is cut at about 2 KB. The module is the
 * message's "name: " prefix when it has one. */
void log_write(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The same, naming the module, the socket and the user (each NULL: not
 * known) the record is about. */
void log_record(enum log_level level, const char *module, const char *socket,
		const char *user, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) do { if (log_threshold >= LOG_WARN) log_write(LOG_WARN, __VA_ARGS__); } while (0)
#define log_info(...) do { if (log_threshold >= LOG_INFO) log_write(LOG_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_threshold >= LOG_DEBUG) log_write(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
