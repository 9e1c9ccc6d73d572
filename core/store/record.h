/* record.h - the bytes of the message store (store/messages.c): a stored
 * message's layout, keys of two names, big-endian words, the time format,
 * and the growing buffers answers are built in (scratch memory). For
 * store/ only. */
#ifndef PARLEY_RECORD_H
#define PARLEY_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "store/messages.h"

/* A buffer in scratch memory (base/scratch.h), always NUL-terminated once
 * something is in it; { 0 } is empty. The caller scratch_free()s `p`. */
struct record_buf {
	char *p;
	size_t len, cap;
};

/* Appends the `n` bytes at `s` (copied), or the C string `s`. */
void record_buf_put(struct record_buf *b, const void *s, size_t n);
void record_buf_str(struct record_buf *b, const char *s);
/* Appends `s` as a JSON string token. */
void record_buf_json(struct record_buf *b, const char *s, size_t n);

/* 8-byte big-endian words (sequence numbers, times, expiries). */
void record_put_u64(unsigned char *p, uint64_t v);
uint64_t record_get_u64(const unsigned char *p);
/* Wall-clock milliseconds since the epoch. */
int64_t record_now_ms(void);
/* "2026-11-25T23:27:00.123Z" into `out`. */
void record_iso_time(int64_t ms, char out[MESSAGES_TIME_LEN]);
/* a "\0" b into `out`; returns the length, or 0 when it would not fit in
 * `cap` (no key is empty: 0 is never a length). */
size_t record_key(char *out, size_t cap, const char *a, size_t alen, const char *b,
		  size_t blen);

/* A stored message: u32 JSON length, the record's JSON, then the
 * recipients at send time, each followed by a NUL. */
struct record {
	const char *json;
	size_t json_len;
	const char *recipients; /* NUL-terminated names, back to back */
	size_t recipients_len;
};

/* Reads a stored value into `r` (pointers into `v`). Returns 0, or
 * -EBADMSG for a value too short for its length word. */
int record_parse(const void *v, size_t vlen, struct record *r);
/* Message `id` read into `r` without a copy: 1, 0 when there is none, or a
 * negative code (store_peek's, or -EBADMSG for a damaged record); valid
 * until the calling host function returns (see store_peek). */
int record_load(const char *id, size_t idlen, struct record *r);
/* Appends a stored value made of `json` and the recipients `rec`. */
void record_value(struct record_buf *v, const char *json, size_t jlen, const char *rec,
		  size_t rlen);
/* A JSON string field's value in a record (the core wrote it: no escapes in
 * ids), copied into `out` and NUL-terminated; its length, or 0 when it is
 * absent, empty or longer than `cap` - 1. */
size_t record_field(const struct record *r, const char *field, char *out, size_t cap);

#endif
