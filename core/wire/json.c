/* json.c - the validating JSON scanner declared in json.h: a strict RFC 8259
 * validator (iterative, with a bit stack, so hostile nesting cannot exhaust
 * the C stack) and cursors over validated bytes. Uses only libc. */
#include "wire/json.h"

#include <errno.h>
#include <string.h>

/* The validator keeps one bit per open container on its own stack; nesting
 * deeper than this is refused whatever max_depth says. */
#define JSON_DEPTH_CEILING 4096

static int is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const unsigned char *skip_ws(const unsigned char *s, const unsigned char *end)
{
	while (s < end && is_ws(*s))
		s++;
	return s;
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads the four hex digits at `s` (there must be four bytes); -1 if any is
 * not a hex digit. */
static long hex4(const unsigned char *s)
{
	long v = 0;

	for (int i = 0; i < 4; i++) {
		int h = hex_value(s[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/* Checks one UTF-8 sequence starting at the non-ASCII byte `s`; returns the
 * byte after it, or NULL if it is malformed, overlong, a surrogate, above
 * U+10FFFF or cut short by `end`. Table 3-7 of the Unicode standard. */
static const unsigned char *scan_utf8(const unsigned char *s, const unsigned char *end)
{
	unsigned char c = *s, lo = 0x80, hi = 0xBF;
	int more;

	if (c >= 0xC2 && c <= 0xDF) {
		more = 1;
	} else if (c >= 0xE0 && c <= 0xEF) {
		more = 2;
		if (c == 0xE0)
			lo = 0xA0; /* overlong below U+0800 */
		else if (c == 0xED)
			hi = 0x9F; /* U+D800-U+DFFF */
	} else if (c >= 0xF0 && c <= 0xF4) {
		more = 3;
		if (c == 0xF0)
			lo = 0x90; /* overlong below U+10000 */
		else if (c == 0xF4)
			hi = 0x8F; /* above U+10FFFF */
	} else {
		return NULL; /* continuation byte, C0, C1 or F5-FF */
	}
	if (end - s <= more)
		return NULL;
	if (s[1] < lo || s[1] > hi)
		return NULL;
	for (int i = 2; i <= more; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return NULL;
	return s + 1 + more;
}

int json_utf8_valid(const char *p, size_t len)
{
	const unsigned char *s = (const unsigned char *)p, *end = s + len;

	while (s < end) {
		if (*s < 0x80)
			s++;
		else if (!(s = scan_utf8(s, end)))
			return 0;
	}
	return 1;
}

/* Validates the string token whose opening quote is at `s`; returns the byte
 * after the closing quote, or NULL. */
static const unsigned char *scan_string(const unsigned char *s, const unsigned char *end)
{
	s++;
	while (s < end) {
		unsigned char c = *s;

		if (c == '"')
			return s + 1;
		if (c < 0x20)
			return NULL;
		if (c >= 0x80) {
			s = scan_utf8(s, end);
			if (!s)
				return NULL;
			continue;
		}
		if (c != '\\') {
			s++;
			continue;
		}
		if (end - s < 2)
			return NULL;
		switch (s[1]) {
		case '"': case '\\': case '/': case 'b':
		case 'f': case 'n': case 'r': case 't':
			s += 2;
			continue;
		case 'u':
			break;
		default:
			return NULL;
		}
		if (end - s < 6)
			return NULL;
		long u = hex4(s + 2);
		if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF))
			return NULL; /* a low surrogate must follow a high one */
		if (u >= 0xD800 && u <= 0xDBFF) {
			if (end - s < 12 || s[6] != '\\' || s[7] != 'u')
				return NULL;
			long lo = hex4(s + 8);
			if (lo < 0xDC00 || lo > 0xDFFF)
				return NULL;
			s += 12;
		} else {
			s += 6;
		}
	}
	return NULL;
}

static const unsigned char *scan_digits(const unsigned char *s, const unsigned char *end)
{
	if (s == end || *s < '0' || *s > '9')
		return NULL;
	while (s < end && *s >= '0' && *s <= '9')
		s++;
	return s;
}

/* Validates the number at `s`; returns the byte after it, or NULL. What may
 * follow (so that "01" or "1x" fail) is the caller's to check. */
static const unsigned char *scan_number(const unsigned char *s, const unsigned char *end)
{
	if (*s == '-')
		s++;
	if (s == end)
		return NULL;
	if (*s == '0')
		s++;
	else if (!(s = scan_digits(s, end)))
		return NULL;
	if (s < end && *s == '.' && !(s = scan_digits(s + 1, end)))
		return NULL;
	if (s < end && (*s == 'e' || *s == 'E')) {
		s++;
		if (s < end && (*s == '+' || *s == '-'))
			s++;
		s = scan_digits(s, end);
	}
	return s;
}

static const unsigned char *scan_literal(const unsigned char *s, const unsigned char *end,
					 const char *word, size_t n)
{
	if ((size_t)(end - s) < n || memcmp(s, word, n) != 0)
		return NULL;
	return s + n;
}

/* Validates a string, number or literal at `s` (not whitespace). */
static const unsigned char *scan_scalar(const unsigned char *s, const unsigned char *end)
{
	switch (*s) {
	case '"':
		return scan_string(s, end);
	case 't':
		return scan_literal(s, end, "true", 4);
	case 'f':
		return scan_literal(s, end, "false", 5);
	case 'n':
		return scan_literal(s, end, "null", 4);
	default:
		if (*s == '-' || (*s >= '0' && *s <= '9'))
			return scan_number(s, end);
		return NULL;
	}
}

/* Validates `"name" :` with surrounding whitespace; returns the byte after
 * the colon, or NULL. */
static const unsigned char *scan_member_name(const unsigned char *s, const unsigned char *end)
{
	s = skip_ws(s, end);
	if (s == end || *s != '"' || !(s = scan_string(s, end)))
		return NULL;
	s = skip_ws(s, end);
	if (s == end || *s != ':')
		return NULL;
	return s + 1;
}

/* Strict RFC 8259 check of exactly one value; max_depth is capped at
 * JSON_DEPTH_CEILING and a negative one means 0 (scalars only). */
enum json_kind json_validate(const char *p, size_t len, int max_depth)
{
	const unsigned char *s = (const unsigned char *)p;
	const unsigned char *end;
	unsigned char is_object[JSON_DEPTH_CEILING / 8];
	enum json_kind top;
	int depth = 0;

	/* Before any pointer arithmetic: an empty span may be NULL. */
	if (len == 0)
		return JSON_INVALID;
	end = s + len;
	if (max_depth < 0)
		max_depth = 0;
	if (max_depth > JSON_DEPTH_CEILING)
		max_depth = JSON_DEPTH_CEILING;
	s = skip_ws(s, end);
	top = json_kind_of((struct json_span){ (const char *)s, (size_t)(end - s) });

	for (;;) {
		/* Here a value must start. */
		s = skip_ws(s, end);
		if (s == end)
			return JSON_INVALID;
		if (*s == '{' || *s == '[') {
			int obj = *s == '{';

			if (depth >= max_depth)
				return JSON_INVALID;
			if (obj)
				is_object[depth / 8] |= (unsigned char)(1u << depth % 8);
			else
				is_object[depth / 8] &= (unsigned char)~(1u << depth % 8);
			depth++;
			s = skip_ws(s + 1, end);
			if (s < end && *s == (obj ? '}' : ']')) {
				s++;
				depth--;
			} else if (obj) {
				if (!(s = scan_member_name(s, end)))
					return JSON_INVALID;
				continue;
			} else {
				continue;
			}
		} else if (!(s = scan_scalar(s, end))) {
			return JSON_INVALID;
		}

		/* A value has ended: close containers until a comma asks for the
		 * next value, or the top-level value is complete. */
		for (;;) {
			s = skip_ws(s, end);
			if (depth == 0)
				return s == end ? top : JSON_INVALID;
			if (s == end)
				return JSON_INVALID;
			int obj = is_object[(depth - 1) / 8] >> (depth - 1) % 8 & 1;
			if (*s == ',') {
				s++;
				if (obj && !(s = scan_member_name(s, end)))
					return JSON_INVALID;
				break;
			}
			if (*s != (obj ? '}' : ']'))
				return JSON_INVALID;
			s++;
			depth--;
		}
	}
}

/* The kind from the first non-space byte; JSON_INVALID for an empty span. */
enum json_kind json_kind_of(struct json_span v)
{
	const unsigned char *s = (const unsigned char *)v.p;
	const unsigned char *end = s + v.len;

	s = skip_ws(s, end);
	if (s == end)
		return JSON_INVALID;
	switch (*s) {
	case '{':
		return JSON_OBJECT;
	case '[':
		return JSON_ARRAY;
	case '"':
		return JSON_STRING;
	case 't':
		return JSON_TRUE;
	case 'f':
		return JSON_FALSE;
	case 'n':
		return JSON_NULL;
	default:
		if (*s == '-' || (*s >= '0' && *s <= '9'))
			return JSON_NUMBER;
		return JSON_INVALID;
	}
}

/* Skips the string token whose opening quote is at `s` without validating
 * it; returns the byte after the closing quote, or `end`. */
static const unsigned char *skip_string(const unsigned char *s, const unsigned char *end)
{
	for (s++; s < end; s++) {
		if (*s == '"')
			return s + 1;
		if (*s == '\\' && ++s == end)
			break;
	}
	return end;
}

/* Skips one value of validated input at `s` (not whitespace); returns the
 * byte after it. Always advances when s < end, so callers cannot spin. */
static const unsigned char *skip_value(const unsigned char *s, const unsigned char *end)
{
	size_t depth = 0;

	if (s == end)
		return s;
	if (*s == '"')
		return skip_string(s, end);
	if (*s != '{' && *s != '[') {
		/* A number or literal runs to the next delimiter. */
		do
			s++;
		while (s < end && !is_ws(*s) && *s != ',' && *s != ']' && *s != '}' && *s != ':');
		return s;
	}
	while (s < end) {
		switch (*s) {
		case '"':
			s = skip_string(s, end);
			continue;
		case '{': case '[':
			depth++;
			break;
		case '}': case ']':
			if (--depth == 0)
				return s + 1;
			break;
		}
		s++;
	}
	return end;
}

/* Points `it` just inside the opening bracket; -EBADMSG unless `v` opens
 * one. */
int json_iter_begin(struct json_span v, struct json_iter *it)
{
	const unsigned char *s = (const unsigned char *)v.p;
	const unsigned char *end = s + v.len;

	s = skip_ws(s, end);
	if (s == end || (*s != '{' && *s != '['))
		return -EBADMSG;
	it->p = (const char *)s + 1;
	it->end = (const char *)end;
	it->first = 1;
	return 0;
}

/* Moves the cursor to the start of its next member: past whitespace and, for
 * all but the first member, the comma. Returns NULL at the container's end. */
static const unsigned char *iter_advance(struct json_iter *it)
{
	const unsigned char *s = (const unsigned char *)it->p;
	const unsigned char *end = (const unsigned char *)it->end;

	s = skip_ws(s, end);
	if (!it->first) {
		if (s == end || *s != ',')
			goto done;
		s = skip_ws(s + 1, end);
	}
	if (s == end || *s == ']' || *s == '}' || *s == ',')
		goto done;
	it->first = 0;
	return s;
done:
	/* Stay at the end so later calls keep returning 0. */
	it->p = it->end;
	it->first = 0;
	return NULL;
}

/* The next element, trimmed; 0 at the closing bracket or the span's end. */
int json_array_next(struct json_iter *it, struct json_span *elem)
{
	const unsigned char *s = iter_advance(it);
	const unsigned char *after;

	if (!s)
		return 0;
	after = skip_value(s, (const unsigned char *)it->end);
	elem->p = (const char *)s;
	elem->len = (size_t)(after - s);
	it->p = (const char *)after;
	return 1;
}

/* The next member's raw key token and value; 0 at the end. */
int json_object_next(struct json_iter *it, struct json_span *key,
		     struct json_span *val)
{
	const unsigned char *s = iter_advance(it);
	const unsigned char *end = (const unsigned char *)it->end;
	const unsigned char *after;

	if (!s || *s != '"')
		goto end;
	after = skip_string(s, end);
	key->p = (const char *)s;
	key->len = (size_t)(after - s);
	s = skip_ws(after, end);
	if (s == end || *s != ':')
		goto end;
	s = skip_ws(s + 1, end);
	if (s == end)
		goto end;
	after = skip_value(s, end);
	val->p = (const char *)s;
	val->len = (size_t)(after - s);
	it->p = (const char *)after;
	return 1;
end:
	it->p = it->end;
	it->first = 0;
	return 0;
}

/* Encodes the code point `cp` as UTF-8 into `out`; returns the byte count. */
static int utf8_put(unsigned long cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Decodes the next character of a string token's body at `*ps` into `out`
 * (up to 4 bytes) and advances `*ps`. Returns the byte count, 0 at the
 * closing quote, or -1 on a bad escape or a token cut short by `end`. */
static int unescape_next(const unsigned char **ps, const unsigned char *end, char *out)
{
	const unsigned char *s = *ps;
	long cp;

	if (s == end)
		return -1;
	if (*s == '"')
		return 0;
	if (*s != '\\') {
		out[0] = (char)*s;
		*ps = s + 1;
		return 1;
	}
	if (end - s < 2)
		return -1;
	switch (s[1]) {
	case '"': case '\\': case '/':
		out[0] = (char)s[1];
		break;
	case 'b':
		out[0] = '\b';
		break;
	case 'f':
		out[0] = '\f';
		break;
	case 'n':
		out[0] = '\n';
		break;
	case 'r':
		out[0] = '\r';
		break;
	case 't':
		out[0] = '\t';
		break;
	case 'u':
		if (end - s < 6 || (cp = hex4(s + 2)) < 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
			return -1;
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			long lo;

			if (end - s < 12 || s[6] != '\\' || s[7] != 'u')
				return -1;
			lo = hex4(s + 8);
			if (lo < 0xDC00 || lo > 0xDFFF)
				return -1;
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			*ps = s + 12;
		} else {
			*ps = s + 6;
		}
		return utf8_put((unsigned long)cp, out);
	default:
		return -1;
	}
	*ps = s + 2;
	return 1;
}

/* Compares the string token at `s` (opening quote), unescaped, with the
 * `klen` bytes of `key`. */
static int token_equals(const unsigned char *s, const unsigned char *end,
			const char *key, size_t klen)
{
	char buf[4];
	size_t at = 0;
	int n;

	s++;
	while ((n = unescape_next(&s, end, buf)) > 0) {
		if ((size_t)n > klen - at || memcmp(key + at, buf, (size_t)n) != 0)
			return 0;
		at += (size_t)n;
	}
	return n == 0 && at == klen;
}

/* First member whose unescaped name equals the C string `key`: 1, 0 or
 * -EBADMSG. */
int json_object_get(struct json_span obj, const char *key, struct json_span *val)
{
	struct json_iter it;
	struct json_span k, v;
	size_t klen = strlen(key);

	if (json_kind_of(obj) != JSON_OBJECT || json_iter_begin(obj, &it) < 0)
		return -EBADMSG;
	while (json_object_next(&it, &k, &v)) {
		if (token_equals((const unsigned char *)k.p,
				 (const unsigned char *)k.p + k.len, key, klen)) {
			*val = v;
			return 1;
		}
	}
	return 0;
}

/* Unescapes a string token (whitespace around it allowed) into `out`:
 * -EBADMSG if it is not one or is malformed, -ENOBUFS if it needs more than
 * `cap` bytes with the NUL. */
long json_string_unescape(struct json_span s, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s.p;
	const unsigned char *end = p + s.len;
	char buf[4];
	size_t len = 0;
	int n;

	p = skip_ws(p, end);
	if (p == end || *p != '"')
		return -EBADMSG;
	if (cap == 0)
		return -ENOBUFS;
	p++;
	for (;;) {
		/* A run of plain bytes is copied at once: most strings have no
		 * escape at all. */
		const unsigned char *run = p;
		while (p < end && *p != '"' && *p != '\\')
			p++;
		if ((size_t)(p - run) > cap - 1 - len)
			return -ENOBUFS;
		memcpy(out + len, run, (size_t)(p - run));
		len += (size_t)(p - run);
		if ((n = unescape_next(&p, end, buf)) <= 0)
			break;
		/* Keep one byte for the NUL. */
		if ((size_t)n > cap - 1 - len)
			return -ENOBUFS;
		memcpy(out + len, buf, (size_t)n);
		len += (size_t)n;
	}
	if (n < 0)
		return -EBADMSG;
	out[len] = '\0';
	return (long)len;
}

/* Plain digits only, no leading zero, at most 2^53; `*out` untouched on
 * -EBADMSG. */
int json_uint(struct json_span v, uint64_t *out)
{
	const unsigned char *s = (const unsigned char *)v.p;
	const unsigned char *end = s + v.len;
	uint64_t n = 0;

	s = skip_ws(s, end);
	while (end > s && is_ws(end[-1]))
		end--;
	/* 2^53 has 16 digits, so 16 digits cannot overflow 64 bits. */
	if (s == end || end - s > 16 || (*s == '0' && end - s > 1))
		return -EBADMSG;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return -EBADMSG;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	if (n > (UINT64_C(1) << 53))
		return -EBADMSG;
	*out = n;
	return 0;
}

size_t json_uint_write(char *out, uint64_t v)
{
	char digits[JSON_UINT_MAX];
	size_t n = 0;

	/* By hand, not snprintf: every ack's header has one, and sprintf's
	 * cost showed in the fan-out profile. */
	do
		digits[n++] = (char)('0' + v % 10);
	while (v /= 10);
	for (size_t i = 0; i < n; i++)
		out[i] = digits[n - 1 - i];
	return n;
}

/* Quotes `s`, escaping '"', '\\', C0 controls and DEL; bytes >= 0x80 pass
 * through unchecked. Writes no NUL. */
size_t json_escape(const char *s, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	char *o = out;

	*o++ = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '"':
			*o++ = '\\';
			*o++ = '"';
			break;
		case '\\':
			*o++ = '\\';
			*o++ = '\\';
			break;
		case '\b':
			*o++ = '\\';
			*o++ = 'b';
			break;
		case '\f':
			*o++ = '\\';
			*o++ = 'f';
			break;
		case '\n':
			*o++ = '\\';
			*o++ = 'n';
			break;
		case '\r':
			*o++ = '\\';
			*o++ = 'r';
			break;
		case '\t':
			*o++ = '\\';
			*o++ = 't';
			break;
		default:
			/* DEL is a control character too, though JSON lets it pass. */
			if (c < 0x20 || c == 0x7F) {
				memcpy(o, "\\u00", 4);
				o[4] = hex[c >> 4];
				o[5] = hex[c & 0xF];
				o += 6;
			} else {
				*o++ = (char)c;
			}
		}
	}
	*o++ = '"';
	return (size_t)(o - out);
}
