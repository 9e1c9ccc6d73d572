/* log.c - leveled logging to stderr (see log.h). */
#include "base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -EINVAL;
}

int log_json;

/* Appends `s` (n bytes) to out as the inside of a JSON string: quotes,
 * backslashes and control characters escaped, bytes that are not UTF-8
 * replaced by U+FFFD (a message may quote what a client sent). Returns the
 * new length, never past cap - 1. */
static size_t json_text(char *out, size_t len, size_t cap, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;

	while (p < end && len + 8 < cap) {
		unsigned c = *p;
		size_t k = 1;

		if (c == '"' || c == '\\') {
			out[len++] = '\\';
			out[len++] = (char)c;
		} else if (c == '\n') {
			out[len++] = '\\';
			out[len++] = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			len += (size_t)snprintf(out + len, cap - len, "\\u%04x", c);
		} else if (c < 0x80) {
			out[len++] = (char)c;
		} else {
			/* The length a valid sequence starting here has, or 0. */
			k = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 :
			    c >= 0xf0 && c <= 0xf4 ? 4 : 0;
			if (k && (size_t)(end - p) >= k) {
				for (size_t i = 1; i < k; i++)
					if ((p[i] & 0xc0) != 0x80)
						k = 0;
			} else {
				k = 0;
			}
			/* Overlong and surrogate forms are refused as JSON would. */
			if (k == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)))
				k = 0;
			if (k == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)))
				k = 0;
			if (k) {
				memcpy(out + len, p, k);
				len += k;
			} else {
				memcpy(out + len, "\xef\xbf\xbd", 3);
				len += 3;
				k = 1;
			}
		}
		p += k;
	}
	out[len] = '\0';
	return len;
}

/* Appends ,"name":"value" (value escaped). */
static size_t json_field(char *out, size_t len, size_t cap, const char *name, const char *v,
			 size_t n)
{
	int m = snprintf(out + len, cap - len, ",\"%s\":\"", name);

	if (m < 0 || (size_t)m >= cap - len)
		return len;
	len = json_text(out, len + (size_t)m, cap - 2, v, n);
	out[len++] = '"';
	out[len] = '\0';
	return len;
}

/* The length of the message's "module: " prefix (a short lower-case name
 * before ": "), or 0. */
static size_t module_prefix(const char *msg)
{
	size_t i = 0;

	while (i < 32 && ((msg[i] >= 'a' && msg[i] <= 'z') || (msg[i] >= '0' && msg[i] <= '9') ||
			  msg[i] == '_' || msg[i] == '-' || msg[i] == '.'))
		i++;
	return i > 0 && msg[i] == ':' && msg[i + 1] == ' ' ? i : 0;
}

static void log_vrecord(enum log_level level, const char *module, const char *socket,
			const char *user, const char *fmt, va_list ap)
{
	char stamp[40], msg[2048], line[6144];
	struct timespec ts;
	struct tm tm;
	size_t len, skip = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	len = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + len, sizeof(stamp) - len, ".%03ldZ", ts.tv_nsec / 1000000);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (!log_json) {
		/* A message's further lines (a stack trace) are indented: a line
		 * that starts a record starts with its time, so a reader (or a
		 * shipper's multiline rule) keeps them in their record. */
		len = 0;
		for (const char *p = msg; *p && len + 4 < sizeof(line); p++) {
			line[len++] = *p;
			if (*p == '\n' && p[1]) {
				line[len++] = ' ';
				line[len++] = ' ';
			}
		}
		line[len] = '\0';
		/* One fprintf per record keeps lines whole when stderr is a pipe. */
		fprintf(stderr, "%s %-5s %s\n", stamp, level_names[level], line);
		return;
	}
	len = (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\"", stamp,
			       level_names[level]);
	if (!module && (skip = module_prefix(msg)) > 0) {
		len = json_field(line, len, sizeof(line), "module", msg, skip);
		skip += 2;
	} else if (module) {
		len = json_field(line, len, sizeof(line), "module", module, strlen(module));
	}
	if (socket)
		len = json_field(line, len, sizeof(line), "socket", socket, strlen(socket));
	if (user)
		len = json_field(line, len, sizeof(line), "user", user, strlen(user));
	len = json_field(line, len, sizeof(line), "message", msg + skip, strlen(msg + skip));
	fprintf(stderr, "%.*s}\n", (int)len, line);
}

void log_write(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vrecord(level, NULL, NULL, NULL, fmt, ap);
	va_end(ap);
}

void log_record(enum log_level level, const char *module, const char *socket,
		const char *user, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vrecord(level, module, socket, user, fmt, ap);
	va_end(ap);
}
