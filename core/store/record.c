/* record.c - the bytes of the message store (see record.h): buffers in
 * scratch memory, words, times, keys, and a stored message's layout. Uses
 * store.c to read a message, wire/json.c to read its fields. */
#include "store/record.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "base/scratch.h"
#include "store/store.h"
#include "wire/json.h"

#define BUF_FIRST 512 /* a record with its content fits in the first block */

void record_buf_put(struct record_buf *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		if (b->cap < BUF_FIRST)
			b->cap = BUF_FIRST;
		b->p = scratch_realloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void record_buf_str(struct record_buf *b, const char *s)
{
	record_buf_put(b, s, strlen(s));
}

/* A JSON string token for `s`. */
void record_buf_json(struct record_buf *b, const char *s, size_t n)
{
	char small[256];
	char *tmp = json_escaped_max(n) <= sizeof(small) ? small :
		    scratch_alloc(json_escaped_max(n));
	size_t m = json_escape(s, n, tmp);

	record_buf_put(b, tmp, m);
	if (tmp != small)
		scratch_free(tmp);
}

void record_put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

uint64_t record_get_u64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

int64_t record_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes `v` as `width` decimal digits. */
static void put_digits(char *out, unsigned v, int width)
{
	for (int i = width - 1; i >= 0; i--, v /= 10)
		out[i] = (char)('0' + v % 10);
}

/* "2026-11-25T23:27:00.123Z" into out[25]. The date and time of the last
 * second asked for are kept: every message of a second shares them, and
 * formatting them anew cost more than the rest of a send's record. */
void record_iso_time(int64_t ms, char out[MESSAGES_TIME_LEN])
{
	static int64_t cached_s = -1;
	static char cached[20];
	int64_t s = ms / 1000, frac = ms % 1000;

	if (frac < 0) {
		frac += 1000;
		s--;
	}

	if (s != cached_s) {
		time_t t = (time_t)s;
		struct tm tm;
		gmtime_r(&t, &tm);
		put_digits(cached, (unsigned)(tm.tm_year + 1900) % 10000, 4);
		cached[4] = '-';
		put_digits(cached + 5, (unsigned)tm.tm_mon + 1, 2);
		cached[7] = '-';
		put_digits(cached + 8, (unsigned)tm.tm_mday, 2);
		cached[10] = 'T';
		put_digits(cached + 11, (unsigned)tm.tm_hour, 2);
		cached[13] = ':';
		put_digits(cached + 14, (unsigned)tm.tm_min, 2);
		cached[16] = ':';
		put_digits(cached + 17, (unsigned)tm.tm_sec, 2);
		cached[19] = '.';
		cached_s = s;
	}
	memcpy(out, cached, 20);
	put_digits(out + 20, (unsigned)frac, 3);
	out[23] = 'Z';
	out[24] = '\0';
}

/* a "\0" b into out; returns the length, or 0 when it would not fit. */
size_t record_key(char *out, size_t cap, const char *a, size_t alen, const char *b,
		       size_t blen)
{
	if (alen + 1 + blen > cap)
		return 0;
	memcpy(out, a, alen);
	out[alen] = '\0';
	memcpy(out + alen + 1, b, blen);
	return alen + 1 + blen;
}

/* ---- records ---- */

/* Reads a stored message value into `r` (pointers into `v`). */
int record_parse(const void *v, size_t vlen, struct record *r)
{
	const unsigned char *p = v;
	uint32_t n;

	if (vlen < 4)
		return -EBADMSG;
	n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if (4 + (size_t)n > vlen)
		return -EBADMSG;
	r->json = (const char *)p + 4;
	r->json_len = n;
	r->recipients = (const char *)p + 4 + n;
	r->recipients_len = vlen - 4 - n;
	return 0;
}

/* The message `id` read into `r`, without a copy (a record is as large as
 * its message, and a conversation:read reads thousands): valid until the
 * calling host function returns (see store_peek). */
int record_load(const char *id, size_t idlen, struct record *r)
{
	const void *v;
	size_t vlen;
	int rc = store_peek(STORE_MESSAGES, id, idlen, &v, &vlen);

	if (rc <= 0)
		return rc;
	return record_parse(v, vlen, r) < 0 ? -EBADMSG : 1;
}

void record_value(struct record_buf *v, const char *json, size_t jlen, const char *rec,
			 size_t rlen)
{
	unsigned char head[4] = { (unsigned char)(jlen >> 24), (unsigned char)(jlen >> 16),
				  (unsigned char)(jlen >> 8), (unsigned char)jlen };

	record_buf_put(v, head, 4);
	record_buf_put(v, json, jlen);
	if (rlen)
		record_buf_put(v, rec, rlen);
}

/* A JSON string field's value in a record (the core wrote it: no escapes
 * in ids), copied into `out`; its length, or 0. */
size_t record_field(const struct record *r, const char *field, char *out, size_t cap)
{
	struct json_span v;
	long n;

	if (json_object_get((struct json_span){ r->json, r->json_len }, field, &v) != 1)
		return 0;
	n = json_string_unescape(v, out, cap);
	return n > 0 ? (size_t)n : 0;
}
