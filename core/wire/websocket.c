/* websocket.c - the WebSocket wire format: request heads, frame headers,
 * masking and query strings (see websocket.h). */
#include "wire/websocket.h"

#include <errno.h>
#include <string.h>

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int same_ci(const char *a, size_t alen, const char *b)
{
	size_t i;

	for (i = 0; i < alen && b[i]; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return i == alen && !b[i];
}

/* A token character of RFC 9110 §5.6.2, for methods and field names. */
static int is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The end of the line starting at `p` (its '\r'), or NULL: when it is not
 * all there yet, or (with *bad set) when a bare '\r' or a control byte is in
 * it. */
static const char *line_end(const char *p, const char *end, int *bad)
{
	const char *q;

	for (q = p; q < end; q++) {
		unsigned char c = (unsigned char)*q;
		if (c == '\r') {
			if (q + 1 == end)
				return NULL;
			if (q[1] == '\n')
				return q;
			break;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			break;
	}
	if (q < end)
		*bad = 1;
	return NULL;
}

static int parse_request_line(const char *p, const char *eol, struct http_head *h)
{
	const char *sp, *target, *tend, *q;

	for (sp = p; sp < eol && is_tchar((unsigned char)*sp); sp++)
		;
	if (sp == p || sp == eol || *sp != ' ' || sp - p > 32)
		return -1;
	h->method = p;
	h->method_len = (uint16_t)(sp - p);
	target = sp + 1;
	tend = memchr(target, ' ', (size_t)(eol - target));
	if (!tend || tend == target || tend - target > 0xffff)
		return -1;
	if (eol - tend != 9 || memcmp(tend + 1, "HTTP/1.", 7) != 0 || tend[8] < '0' || tend[8] > '9')
		return -1;
	h->minor = (uint8_t)(tend[8] - '0');
	for (q = target; q < tend; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7f)
			return -1;
	h->path = target;
	q = memchr(target, '?', (size_t)(tend - target));
	h->path_len = (uint16_t)((q ? q : tend) - target);
	h->query = q ? q + 1 : NULL;
	h->query_len = q ? (uint16_t)(tend - q - 1) : 0;
	return 0;
}

static int parse_field(const char *p, const char *eol, struct http_field *f)
{
	const char *colon, *v, *vend;

	for (colon = p; colon < eol && is_tchar((unsigned char)*colon); colon++)
		;
	if (colon == p || colon == eol || *colon != ':' || colon - p > 0xffff)
		return -1;
	v = colon + 1;
	vend = eol;
	while (v < vend && (*v == ' ' || *v == '\t'))
		v++;
	while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
		vend--;
	if (vend - v > 0xffff)
		return -1;
	f->name = p;
	f->name_len = (uint16_t)(colon - p);
	f->value = v;
	f->value_len = (uint16_t)(vend - v);
	return 0;
}

int http_head_parse(const char *buf, size_t len, struct http_head *h)
{
	const char *p = buf, *end = buf + len, *eol;
	int bad = 0;

	h->nfields = 0;
	/* RFC 9112 §2.2: empty lines before the request line are ignored. */
	while (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
		p += 2;
	eol = line_end(p, end, &bad);
	if (!eol)
		return bad ? -EBADMSG : 0;
	if (parse_request_line(p, eol, h) < 0)
		return -EBADMSG;
	for (p = eol + 2;; p = eol + 2) {
		eol = line_end(p, end, &bad);
		if (!eol)
			return bad ? -EBADMSG : 0;
		if (eol == p)
			return (int)(eol + 2 - buf);
		if (h->nfields == HTTP_HEAD_MAX_FIELDS)
			return -EMSGSIZE;
		if (parse_field(p, eol, &h->fields[h->nfields]) < 0)
			return -EBADMSG;
		h->nfields++;
	}
}

const struct http_field *http_head_field(const struct http_head *h, const char *name)
{
	for (int i = 0; i < h->nfields; i++)
		if (same_ci(h->fields[i].name, h->fields[i].name_len, name))
			return &h->fields[i];
	return NULL;
}

int http_list_has(const char *v, size_t len, const char *token)
{
	const char *p = v, *end = v + len;

	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma ? comma : end;
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		const char *te = e;
		while (te > p && (te[-1] == ' ' || te[-1] == '\t'))
			te--;
		if (same_ci(p, (size_t)(te - p), token))
			return 1;
		p = e + 1;
	}
	return 0;
}

/* Whether the token at p (n bytes, spaces around it trimmed) is `word`. */
static int token_is(const char *p, size_t n, const char *word)
{
	while (n && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	return same_ci(p, n, word);
}

/* Whether one permessage-deflate offer (its parameters, "; a; b=1") can
 * be taken as parley speaks it: every message on its own (no context
 * takeover either way, which the answer imposes: RFC 7692 §7.1.1) and a
 * 15-bit window for what parley sends. A parameter not known, or a
 * smaller server window asked for, declines the offer. */
static int deflate_params_ok(const char *p, size_t n)
{
	while (n) {
		const char *semi = memchr(p, ';', n);
		size_t len = semi ? (size_t)(semi - p) : n;
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;

		if (token_is(p, klen, "server_max_window_bits")) {
			if (!eq || !token_is(eq + 1, len - klen - 1, "15"))
				return 0;
		} else if (token_is(p, klen, "server_no_context_takeover") ||
			   token_is(p, klen, "client_no_context_takeover")) {
			if (eq)
				return 0; /* these take no value */
		} else if (!token_is(p, klen, "client_max_window_bits")) {
			return 0;
		}
		if (!semi)
			break;
		n -= len + 1;
		p = semi + 1;
	}
	return 1;
}

int ws_deflate_offered(const char *v, size_t len)
{
	const char *p, *end;

	for (p = v, end = v + len; p < end;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		size_t olen = comma ? (size_t)(comma - p) : (size_t)(end - p);
		const char *semi = memchr(p, ';', olen);
		size_t nlen = semi ? (size_t)(semi - p) : olen;

		if (token_is(p, nlen, "permessage-deflate") &&
		    (!semi || deflate_params_ok(semi + 1, olen - nlen - 1)))
			return 1;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

int query_next(const char *q, size_t qlen, size_t *pos, const char **k, size_t *klen,
	       const char **v, size_t *vlen)
{
	while (*pos < qlen) {
		const char *p = q + *pos;
		const char *amp = memchr(p, '&', qlen - *pos);
		size_t n = amp ? (size_t)(amp - p) : qlen - *pos;
		const char *eq = memchr(p, '=', n);

		*pos += n + 1;
		if (n == 0)
			continue;
		*k = p;
		*klen = eq ? (size_t)(eq - p) : n;
		*v = eq ? eq + 1 : NULL;
		*vlen = eq ? n - *klen - 1 : 0;
		return 1;
	}
	return 0;
}

static int hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

size_t url_decode(const char *in, size_t len, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int hi, lo;
		if (in[i] == '+') {
			out[n++] = ' ';
		} else if (in[i] == '%' && i + 2 < len && (hi = hex((unsigned char)in[i + 1])) >= 0 &&
			   (lo = hex((unsigned char)in[i + 2])) >= 0) {
			out[n++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[n++] = in[i];
		}
	}
	return n;
}

int ws_frame_parse(const uint8_t *p, size_t n, struct ws_frame *f)
{
	size_t need = 2;
	uint64_t len;

	if (n < 2)
		return 0;
	f->fin = p[0] >> 7;
	f->rsv = (p[0] >> 4) & 7;
	f->opcode = p[0] & 0xf;
	f->masked = p[1] >> 7;
	len = p[1] & 0x7f;
	if (len == 126)
		need += 2;
	else if (len == 127)
		need += 8;
	if (f->masked)
		need += 4;
	if (n < need)
		return 0;
	if (len == 126) {
		len = (uint64_t)p[2] << 8 | p[3];
	} else if (len == 127) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | p[2 + i];
	}
	f->len = len;
	if (f->masked)
		memcpy(f->mask, p + need - 4, 4);
	f->head_len = (uint8_t)need;
	return (int)need;
}

const char *ws_frame_error(const struct ws_frame *f, int in_message)
{
	if (f->rsv)
		return "reserved bits set (no extension was agreed)";
	if (!f->masked)
		return "an unmasked client frame";
	if (f->len >> 63)
		return "a payload length with the top bit set";
	switch (f->opcode) {
	case WS_CONT:
		return in_message ? NULL : "a continuation with no message begun";
	case WS_TEXT:
	case WS_BINARY:
		return in_message ? "a new message inside a fragmented one" : NULL;
	case WS_CLOSE:
	case WS_PING:
	case WS_PONG:
		if (!f->fin)
			return "a fragmented control frame";
		return f->len > 125 ? "a control frame over 125 bytes" : NULL;
	default:
		return "a reserved opcode";
	}
}

void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], size_t offset)
{
	size_t i = 0;

	/* Eight bytes at a time once aligned with the mask. */
	while (i < n && ((offset + i) & 3))
		p[i] ^= mask[(offset + i) & 3], i++;
	if (n - i >= 8) {
		uint64_t m8;
		uint8_t m[8];
		for (int j = 0; j < 8; j++)
			m[j] = mask[j & 3];
		memcpy(&m8, m, 8);
		for (; n - i >= 8; i += 8) {
			uint64_t w;
			memcpy(&w, p + i, 8);
			w ^= m8;
			memcpy(p + i, &w, 8);
		}
	}
	for (; i < n; i++)
		p[i] ^= mask[(offset + i) & 3];
}

size_t ws_header_len(uint64_t len)
{
	return len < 126 ? 2 : len <= 0xffff ? 4 : 10;
}

size_t ws_header_write(uint8_t *out, uint8_t opcode, uint64_t len)
{
	out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
	if (len < 126) {
		out[1] = (uint8_t)len;
		return 2;
	}
	if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		return 4;
	}
	out[1] = 127;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
	return 10;
}

int ws_close_code_valid(unsigned code)
{
	if (code >= 3000 && code <= 4999)
		return 1;
	return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}
