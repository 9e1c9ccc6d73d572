/* alloc.h - the general allocator: aborts on out-of-memory (as Redis's zmalloc).
 * Sizes a client controls are checked against limits before these are called. */
#ifndef PARLEY_ALLOC_H
#define PARLEY_ALLOC_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reports an allocation of `n` bytes that failed, and aborts. */
static inline void *alloc_fail(size_t n)
{
	fprintf(stderr, "parley: out of memory allocating %zu bytes\n", n);
	abort();
}

/* malloc, calloc, realloc, strndup and strdup that never return NULL (a
 * size of 0 takes one byte): what they return is the caller's to free(). */
static inline void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	return p ? p : alloc_fail(n);
}

static inline void *xcalloc(size_t count, size_t n)
{
	void *p = calloc(count ? count : 1, n ? n : 1);
	return p ? p : alloc_fail(count * n);
}

static inline void *xrealloc(void *old, size_t n)
{
	void *p = realloc(old, n ? n : 1);
	return p ? p : alloc_fail(n);
}

static inline char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static inline char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

#endif
