/* check.h - the unit tests' whole framework: CHECK macros that count checks,
 * print file:line with what was expected and what was got on a failure, and
 * check_report() for main's exit status. Each test program includes it once. */
#ifndef PARLEY_CHECK_H
#define PARLEY_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_total;
static int check_failed;

/* Counts a check; returns 1 if it passed, so a test can stop early. */
static inline int check_count(int ok, const char *file, int line)
{
	check_total++;
	if (!ok) {
		check_failed++;
		fprintf(stderr, "%s:%d: FAIL ", file, line);
	}
	return ok;
}

/* Prints `len` bytes quoted, non-printable ones as \xNN, at most 120. */
static inline void check_print_mem(const void *p, size_t len)
{
	const unsigned char *s = p;
	size_t n = len < 120 ? len : 120;

	if (!p) {
		fputs("(null)", stderr);
		return;
	}
	fputc('"', stderr);
	for (size_t i = 0; i < n; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7F && s[i] != '"' && s[i] != '\\')
			fputc(s[i], stderr);
		else
			fprintf(stderr, "\\x%02x", s[i]);
	}
	fputc('"', stderr);
	if (n < len)
		fprintf(stderr, "... (%zu bytes)", len);
}

static inline int check_true(int ok, const char *file, int line, const char *expr)
{
	if (!check_count(ok, file, line))
		fprintf(stderr, "expected %s to hold\n", expr);
	return ok;
}

static inline int check_int(long long got, long long want, const char *file,
			    int line, const char *expr)
{
	int ok = got == want;

	if (!check_count(ok, file, line))
		fprintf(stderr, "%s: expected %lld, got %lld\n", expr, want, got);
	return ok;
}

static inline int check_uint(unsigned long long got, unsigned long long want,
			     const char *file, int line, const char *expr)
{
	int ok = got == want;

	if (!check_count(ok, file, line))
		fprintf(stderr, "%s: expected %llu (0x%llx), got %llu (0x%llx)\n",
			expr, want, want, got, got);
	return ok;
}

static inline int check_mem(const void *got, size_t glen, const void *want,
			    size_t wlen, const char *file, int line, const char *expr)
{
	int ok = got && glen == wlen && (wlen == 0 || memcmp(got, want, wlen) == 0);

	if (!check_count(ok, file, line)) {
		fprintf(stderr, "%s: expected ", expr);
		check_print_mem(want, wlen);
		fputs(", got ", stderr);
		check_print_mem(got, glen);
		fputc('\n', stderr);
	}
	return ok;
}

static inline int check_str(const char *got, const char *want, const char *file,
			    int line, const char *expr)
{
	return check_mem(got, got ? strlen(got) : 0, want, strlen(want), file, line, expr);
}

/* Prints the summary line; main returns its result. */
static inline int check_report(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, check_total, check_failed);
	return check_failed != 0;
}

#define CHECK(cond) check_true((cond) != 0, __FILE__, __LINE__, #cond)
#define CHECK_INT(got, want) \
	check_int((long long)(got), (long long)(want), __FILE__, __LINE__, #got)
#define CHECK_UINT(got, want) \
	check_uint((unsigned long long)(got), (unsigned long long)(want), \
		   __FILE__, __LINE__, #got)
#define CHECK_MEM(got, glen, want, wlen) \
	check_mem((got), (glen), (want), (wlen), __FILE__, __LINE__, #got)
#define CHECK_STR(got, want) check_str((got), (want), __FILE__, __LINE__, #got)

#endif
