/* sio_msgpack.c - socket.io-msgpack-parser's packets (see sio_msgpack.h):
 * msgpack-c decodes and encodes the values; this file checks a message's
 * announced sizes before msgpack-c allocates for them, and maps a packet to
 * and from the text parser's form (sio.c, json.c). */
#include "wire/sio_msgpack.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "base/alloc.h"
#include "wire/json.h"

/* ---- the sizes a message announces ---- */

/* msgpack-c keeps one frame of its stack per open container and refuses a
 * 33rd; the walk below refuses first, with a reason. */
#define SCAN_DEPTH_MAX 32

/* Reads a `w`-byte big-endian unsigned integer at p[*i]. */
static int read_be(const unsigned char *p, size_t len, size_t *i, unsigned w, uint64_t *v)
{
	if (len - *i < w)
		return -EBADMSG;
	*v = 0;
	for (unsigned k = 0; k < w; k++)
		*v = *v << 8 | p[(*i)++];
	return 0;
}

/* Walks the message's headers without decoding anything: it must be one
 * whole value, each string, binary and ext must fit in the bytes left, and
 * so must each container's element count (an element takes a byte at
 * least) - msgpack-c allocates an array's slots as soon as it reads the
 * count, 24 bytes each, so five bytes announcing 2^32 elements would ask
 * it for 96 GiB. Containers nest at most `max_depth` deep. Counts the
 * binaries and exts (each may become an attachment) in `*nbin`. */
static int scan(const unsigned char *p, size_t len, int max_depth, size_t *nbin,
		const char **why)
{
	uint64_t due[SCAN_DEPTH_MAX + 1]; /* elements still due at each open level */
	int depth = 0;
	size_t i = 0;

	*nbin = 0;
	due[0] = 1;
	for (;;) {
		uint64_t n = 0, skip = 0, elements = 0;
		int container = 0;
		unsigned char b;

		while (depth > 0 && due[depth] == 0)
			depth--;
		if (due[depth] == 0)
			break;
		due[depth]--;
		if (i >= len)
			goto truncated;
		b = p[i++];
		if (b <= 0x7f || b >= 0xe0) {
			/* a fixint */
		} else if (b <= 0x8f) {
			container = 1;
			elements = 2 * (uint64_t)(b & 0x0f);
		} else if (b <= 0x9f) {
			container = 1;
			elements = b & 0x0f;
		} else if (b <= 0xbf) {
			skip = b & 0x1f;
		} else {
			switch (b) {
			case 0xc0: case 0xc2: case 0xc3:
				break;
			case 0xc1:
				*why = "a reserved msgpack byte (0xc1)";
				return -EBADMSG;
			case 0xc4: case 0xc5: case 0xc6: /* bin 8, 16, 32 */
				if (read_be(p, len, &i, 1u << (b - 0xc4), &skip) < 0)
					goto truncated;
				(*nbin)++;
				break;
			case 0xc7: case 0xc8: case 0xc9: /* ext 8, 16, 32: then its type */
				if (read_be(p, len, &i, 1u << (b - 0xc7), &skip) < 0)
					goto truncated;
				skip++;
				(*nbin)++;
				break;
			case 0xca: skip = 4; break;
			case 0xcb: skip = 8; break;
			case 0xcc: case 0xcd: case 0xce: case 0xcf: /* uint 8..64 */
				skip = 1u << (b - 0xcc);
				break;
			case 0xd0: case 0xd1: case 0xd2: case 0xd3: /* int 8..64 */
				skip = 1u << (b - 0xd0);
				break;
			case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: /* fixext: type, data */
				skip = 1 + (1u << (b - 0xd4));
				(*nbin)++;
				break;
			case 0xd9: case 0xda: case 0xdb: /* str 8, 16, 32 */
				if (read_be(p, len, &i, 1u << (b - 0xd9), &skip) < 0)
					goto truncated;
				break;
			case 0xdc: case 0xdd: /* array 16, 32 */
				if (read_be(p, len, &i, b == 0xdc ? 2 : 4, &n) < 0)
					goto truncated;
				container = 1;
				elements = n;
				break;
			default: /* 0xde, 0xdf: map 16, 32 */
				if (read_be(p, len, &i, b == 0xde ? 2 : 4, &n) < 0)
					goto truncated;
				container = 1;
				elements = 2 * n;
				break;
			}
		}
		if (skip > len - i)
			goto truncated;
		i += skip;
		if (!container)
			continue;
		if (depth + 1 > max_depth) {
			*why = "nested deeper than the limit";
			return -ELOOP;
		}
		if (elements > len - i)
			goto truncated;
		due[++depth] = elements;
	}
	if (i != len) {
		*why = "bytes after the packet";
		return -EBADMSG;
	}
	return 0;
truncated:
	*why = "truncated, or a size over what the message holds";
	return -EBADMSG;
}

/* ---- decoding: a packet's data to JSON ---- */

struct decoder {
	char *p; /* the namespace, then the JSON */
	size_t len, cap, max;
	struct sio_attachment *att;
	unsigned natt, max_att;
	const char **why;
};

/* Makes the buffer hold at least `n` more bytes. */
static void grow(struct decoder *d, size_t n)
{
	size_t cap = d->cap ? d->cap : 256;

	if (d->len + n <= d->cap)
		return;
	while (cap < d->len + n)
		cap *= 2;
	d->p = xrealloc(d->p, cap);
	d->cap = cap;
}

static int too_big(struct decoder *d)
{
	*d->why = "data over the JSON size limit";
	return -EMSGSIZE;
}

static int put(struct decoder *d, const char *s, size_t n)
{
	if (n > d->max - d->len)
		return too_big(d);
	grow(d, n);
	memcpy(d->p + d->len, s, n);
	d->len += n;
	return 0;
}

/* A msgpack string as a JSON string token. */
static int put_string(struct decoder *d, const char *s, size_t n)
{
	size_t w;

	if (!json_utf8_valid(s, n)) {
		*d->why = "a string that is not UTF-8";
		return -EPROTO;
	}
	/* Escaping adds the quotes at least: what cannot fit is refused before
	 * room for the worst case (bounded by the message's size) is made. */
	if (n + 2 > d->max - d->len)
		return too_big(d);
	grow(d, json_escaped_max(n));
	w = json_escape(s, n, d->p + d->len);
	if (w > d->max - d->len)
		return too_big(d);
	d->len += w;
	return 0;
}

/* A binary value: an attachment, and its placeholder in the JSON. */
static int put_binary(struct decoder *d, const char *s, size_t n)
{
	static const char head[] = "{\"_placeholder\":true,\"num\":";
	char ph[sizeof(head) + JSON_UINT_MAX + 1];
	size_t len = sizeof(head) - 1;

	if (d->natt >= d->max_att) {
		*d->why = "more binaries than the attachment limit";
		return -EMSGSIZE;
	}
	d->att[d->natt].data = (unsigned char *)(uintptr_t)s;
	d->att[d->natt].len = n;
	memcpy(ph, head, len);
	len += json_uint_write(ph + len, d->natt);
	ph[len++] = '}';
	d->natt++;
	return put(d, ph, len);
}

static int put_value(struct decoder *d, const msgpack_object *v)
{
	char num[40];
	int n, r = 0;

	switch (v->type) {
	case MSGPACK_OBJECT_NIL:
		return put(d, "null", 4);
	case MSGPACK_OBJECT_BOOLEAN:
		return v->via.boolean ? put(d, "true", 4) : put(d, "false", 5);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		/* Not snprintf: integers are most of what a packet holds, and
		 * the generic formatter costs several times as much. */
		return put(d, num, json_uint_write(num, v->via.u64));
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		num[0] = '-';
		/* The magnitude of INT64_MIN too, computed unsigned. */
		return put(d, num, 1 + json_uint_write(num + 1, 0 - (uint64_t)v->via.i64));
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		/* JSON has no NaN or infinity: JSON.stringify writes null. */
		if (!isfinite(v->via.f64))
			return put(d, "null", 4);
		n = snprintf(num, sizeof(num), v->type == MSGPACK_OBJECT_FLOAT32 ? "%.9g" : "%.17g",
			     v->via.f64);
		return put(d, num, (size_t)n);
	case MSGPACK_OBJECT_STR:
		return put_string(d, v->via.str.ptr, v->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return put_binary(d, v->via.bin.ptr, v->via.bin.size);
	case MSGPACK_OBJECT_EXT:
		/* notepack.io, the parser's codec, writes undefined as fixext 1
		 * of type 0 holding 0, and an ArrayBuffer (a browser's binary) as
		 * ext of type 0. */
		if (v->via.ext.type == 0 && v->via.ext.size == 1 && v->via.ext.ptr[0] == 0)
			return put(d, "null", 4);
		if (v->via.ext.type == 0)
			return put_binary(d, v->via.ext.ptr, v->via.ext.size);
		*d->why = "a msgpack ext type other than 0";
		return -EPROTO;
	case MSGPACK_OBJECT_ARRAY:
		if ((r = put(d, "[", 1)) < 0)
			return r;
		for (uint32_t i = 0; i < v->via.array.size; i++) {
			if (i && (r = put(d, ",", 1)) < 0)
				return r;
			if ((r = put_value(d, &v->via.array.ptr[i])) < 0)
				return r;
		}
		return put(d, "]", 1);
	case MSGPACK_OBJECT_MAP:
		if ((r = put(d, "{", 1)) < 0)
			return r;
		for (uint32_t i = 0; i < v->via.map.size; i++) {
			const msgpack_object_kv *kv = &v->via.map.ptr[i];
			if (kv->key.type != MSGPACK_OBJECT_STR) {
				*d->why = "a map key that is not a string";
				return -EPROTO;
			}
			if ((i && (r = put(d, ",", 1)) < 0) ||
			    (r = put_string(d, kv->key.via.str.ptr, kv->key.via.str.size)) < 0 ||
			    (r = put(d, ":", 1)) < 0 || (r = put_value(d, &kv->val)) < 0)
				return r;
		}
		return put(d, "}", 1);
	}
	*d->why = "an unknown msgpack type";
	return -EPROTO;
}

/* notepack.io's undefined (see put_value), which stands for a field left
 * out. */
static int is_undefined(const msgpack_object *v)
{
	return v->type == MSGPACK_OBJECT_EXT && v->via.ext.type == 0 && v->via.ext.size == 1 &&
	       v->via.ext.ptr[0] == 0;
}

static int key_is(const msgpack_object *k, const char *name)
{
	size_t n = strlen(name);

	return k->via.str.size == n && memcmp(k->via.str.ptr, name, n) == 0;
}

/* The kind of `data` each type takes, as socket.io-msgpack-parser's
 * checkPacket requires (NULL: none). */
static int data_fits(enum sio_type type, const msgpack_object *data)
{
	switch (type) {
	case SIO_CONNECT:
		return !data || data->type == MSGPACK_OBJECT_MAP;
	case SIO_DISCONNECT:
		return !data;
	case SIO_CONNECT_ERROR:
		return data && (data->type == MSGPACK_OBJECT_MAP || data->type == MSGPACK_OBJECT_STR);
	default:
		return data && data->type == MSGPACK_OBJECT_ARRAY;
	}
}

/* Reads the packet's map into `m`, its data through `d`. */
static int read_packet(const msgpack_object *root, struct decoder *d, size_t max_json,
		       struct sio_msgpack_packet *m)
{
	const msgpack_object *type = NULL, *nsp = NULL, *data = NULL, *id = NULL;
	size_t json_at;
	int r;

	if (root->type != MSGPACK_OBJECT_MAP) {
		*d->why = "a packet that is not a map";
		return -EPROTO;
	}
	for (uint32_t i = 0; i < root->via.map.size; i++) {
		const msgpack_object_kv *kv = &root->via.map.ptr[i];
		const msgpack_object *val = is_undefined(&kv->val) ? NULL : &kv->val;
		if (kv->key.type != MSGPACK_OBJECT_STR)
			continue; /* nothing Socket.IO reads; client options and such */
		if (key_is(&kv->key, "type"))
			type = val;
		else if (key_is(&kv->key, "nsp"))
			nsp = val;
		else if (key_is(&kv->key, "data"))
			data = val;
		else if (key_is(&kv->key, "id"))
			id = val && val->type != MSGPACK_OBJECT_NIL ? val : NULL;
	}
	if (!type || type->type != MSGPACK_OBJECT_POSITIVE_INTEGER || type->via.u64 > SIO_CONNECT_ERROR) {
		*d->why = "no packet type, or an unknown one";
		return -EPROTO;
	}
	m->pkt.type = (enum sio_type)type->via.u64;
	/* A namespace with a comma could not be written back as text, which
	 * is how the server's replies are first made (sio_msgpack_encode). */
	if (!nsp || nsp->type != MSGPACK_OBJECT_STR || nsp->via.str.size == 0 ||
	    nsp->via.str.ptr[0] != '/' || memchr(nsp->via.str.ptr, ',', nsp->via.str.size)) {
		*d->why = "no namespace, or not a string starting with '/'";
		return -EPROTO;
	}
	if (id && (id->type != MSGPACK_OBJECT_POSITIVE_INTEGER || id->via.u64 > SIO_MAX_ACK_ID)) {
		*d->why = "an id that is not an integer from 0 to 2^53 - 1";
		return -EPROTO;
	}
	m->pkt.id = id ? (int64_t)id->via.u64 : -1;
	if (!data_fits(m->pkt.type, data)) {
		*d->why = "data of the wrong kind for the packet type";
		return -EPROTO;
	}
	/* The namespace first, then the JSON, in one buffer: the JSON's limit
	 * counts from where it starts. */
	d->max = nsp->via.str.size + max_json;
	if ((r = put(d, nsp->via.str.ptr, nsp->via.str.size)) < 0)
		return r;
	json_at = d->len;
	if (data && (r = put_value(d, data)) < 0)
		return r;
	/* A NUL after the JSON, as the text path's copies have. */
	grow(d, 1);
	d->p[d->len] = '\0';
	m->pkt.nsp_len = nsp->via.str.size;
	m->pkt.len = d->len - json_at;
	m->buf = d->p;
	m->pkt.nsp = m->buf;
	m->pkt.data = m->buf + json_at;
	return 0;
}

int sio_msgpack_decode(const void *p, size_t len, const struct sio_msgpack_limits *lim,
		       struct sio_msgpack_packet *out, const char **why)
{
	struct decoder d = { .why = why, .max_att = lim->max_attachments };
	msgpack_unpacked u;
	size_t off = 0, nbin;
	int depth = lim->max_depth + 1 < SCAN_DEPTH_MAX ? lim->max_depth + 1 : SCAN_DEPTH_MAX;
	int r;

	memset(out, 0, sizeof(*out));
	/* The packet's map is one level over its data. */
	r = scan(p, len, depth, &nbin, why);
	if (r < 0)
		return r;
	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, p, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len) {
		/* The walk above found one whole value: msgpack-c disagreeing
		 * is the walk's bug, still refused as input. */
		*why = "not one msgpack value";
		r = -EBADMSG;
		goto out;
	}
	d.att = xcalloc(nbin, sizeof(*d.att));
	r = read_packet(&u.data, &d, lim->max_json, out);
	if (r < 0) {
		free(d.p);
		free(d.att);
		memset(out, 0, sizeof(*out));
		goto out;
	}
	out->att = d.att;
	out->natt = d.natt;
out:
	msgpack_unpacked_destroy(&u);
	return r;
}

void sio_msgpack_packet_fini(struct sio_msgpack_packet *m)
{
	free(m->att);
	free(m->buf);
	m->att = NULL;
	m->buf = NULL;
	m->natt = 0;
}

/* ---- encoding: a text packet to msgpack ---- */

#define ENCODE_DEPTH_MAX 512

static int buf_write(void *data, const char *s, size_t n)
{
	struct sio_msgpack_buf *b = data;

	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		while (cap - b->len < n)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	return 0;
}

struct encoder {
	msgpack_packer pk;
	struct sio_msgpack_buf *out; /* what pk writes to */
	char *scratch; /* room for any string of the text, unescaped */
	size_t scratch_cap;
	const struct sio_attachment *att;
	unsigned natt; /* 0 unless the packet is a binary one */
};

/* The attachment a placeholder object stands for, or -1 when `v` is not
 * one (then it is written as the object it is). */
static long placeholder(const struct encoder *e, struct json_span v)
{
	struct json_span flag, num;
	uint64_t n;

	if (!e->natt || json_object_get(v, "_placeholder", &flag) != 1 ||
	    json_kind_of(flag) != JSON_TRUE || json_object_get(v, "num", &num) != 1 ||
	    json_uint(num, &n) < 0 || n >= e->natt)
		return -1;
	return (long)n;
}

/* A JSON number token as msgpack: an integer when it is one that fits
 * (read here: strtoull wants a copy with a NUL and costs more than the
 * packing), else a double. */
static void pack_number(struct encoder *e, struct json_span v)
{
	int neg = v.p[0] == '-';
	uint64_t n = 0;
	size_t i;
	char small[64];
	char *text;

	for (i = (size_t)neg; i < v.len && v.p[i] >= '0' && v.p[i] <= '9'; i++) {
		unsigned digit = (unsigned)(v.p[i] - '0');
		if (n > (UINT64_MAX - digit) / 10)
			break; /* too big for an integer */
		n = n * 10 + digit;
	}
	if (i == v.len && !neg) {
		msgpack_pack_uint64(&e->pk, n);
		return;
	}
	if (i == v.len && n <= (uint64_t)INT64_MAX + 1) {
		msgpack_pack_int64(&e->pk, n ? (int64_t)(0 - n) : 0);
		return;
	}
	text = v.len < sizeof(small) ? small : xmalloc(v.len + 1);
	memcpy(text, v.p, v.len);
	text[v.len] = '\0';
	msgpack_pack_double(&e->pk, strtod(text, NULL));
	if (text != small)
		free(text);
}

static int pack_string(struct encoder *e, struct json_span v)
{
	long n = json_string_unescape(v, e->scratch, e->scratch_cap);

	if (n < 0)
		return -EBADMSG;
	msgpack_pack_str_with_body(&e->pk, e->scratch, (size_t)n);
	return 0;
}

/* Containers are written before their size is known (counting first
 * would walk every nested value once per level above it): a 5-byte
 * header goes first, and container_end writes the real one, as short as
 * msgpack allows, moving the elements up behind it. */
static size_t container_begin(struct encoder *e, int map)
{
	size_t at = e->out->len;

	if (map)
		msgpack_pack_map(&e->pk, UINT32_MAX);
	else
		msgpack_pack_array(&e->pk, UINT32_MAX);
	return at;
}

static void container_end(struct encoder *e, size_t at, int map, uint32_t count)
{
	unsigned char head[5];
	size_t n;
	char *p = e->out->data + at;

	if (count < 16) {
		head[0] = (unsigned char)((map ? 0x80 : 0x90) | count);
		n = 1;
	} else if (count < 65536) {
		head[0] = map ? 0xde : 0xdc;
		head[1] = (unsigned char)(count >> 8);
		head[2] = (unsigned char)count;
		n = 3;
	} else {
		head[0] = map ? 0xdf : 0xdd;
		head[1] = (unsigned char)(count >> 24);
		head[2] = (unsigned char)(count >> 16);
		head[3] = (unsigned char)(count >> 8);
		head[4] = (unsigned char)count;
		n = 5;
	}
	if (n < 5)
		memmove(p + n, p + 5, e->out->len - at - 5);
	memcpy(p, head, n);
	e->out->len -= 5 - n;
}

static int pack_value(struct encoder *e, struct json_span v, int depth)
{
	struct json_iter it;
	struct json_span key, val;
	uint32_t count = 0;
	size_t at;
	long att;

	if (depth > ENCODE_DEPTH_MAX)
		return -EBADMSG;
	switch (json_kind_of(v)) {
	case JSON_NULL:
		msgpack_pack_nil(&e->pk);
		return 0;
	case JSON_TRUE:
		msgpack_pack_true(&e->pk);
		return 0;
	case JSON_FALSE:
		msgpack_pack_false(&e->pk);
		return 0;
	case JSON_NUMBER:
		pack_number(e, v);
		return 0;
	case JSON_STRING:
		return pack_string(e, v);
	case JSON_ARRAY:
		at = container_begin(e, 0);
		json_iter_begin(v, &it);
		while (json_array_next(&it, &val) == 1) {
			if (pack_value(e, val, depth + 1) < 0)
				return -EBADMSG;
			count++;
		}
		container_end(e, at, 0, count);
		return 0;
	case JSON_OBJECT:
		att = placeholder(e, v);
		if (att >= 0) {
			msgpack_pack_bin_with_body(&e->pk, e->att[att].data, e->att[att].len);
			return 0;
		}
		at = container_begin(e, 1);
		json_iter_begin(v, &it);
		while (json_object_next(&it, &key, &val) == 1) {
			if (pack_string(e, key) < 0 || pack_value(e, val, depth + 1) < 0)
				return -EBADMSG;
			count++;
		}
		container_end(e, at, 1, count);
		return 0;
	default:
		return -EBADMSG;
	}
}

int sio_msgpack_encode(const char *text, size_t len, const struct sio_attachment *att,
		       unsigned natt, struct sio_msgpack_buf *out)
{
	struct sio_packet pkt;
	struct encoder e = { .att = att, .out = out };
	enum sio_type type;
	int r = -EBADMSG;

	if (sio_parse(text, len, natt, &pkt) < 0)
		return -EBADMSG;
	if (pkt.len && json_validate(pkt.data, pkt.len, ENCODE_DEPTH_MAX) == JSON_INVALID)
		return -EBADMSG;
	type = pkt.type;
	if (type == SIO_BINARY_EVENT || type == SIO_BINARY_ACK) {
		type = type == SIO_BINARY_EVENT ? SIO_EVENT : SIO_ACK;
		e.natt = pkt.attachments;
	}
	e.scratch_cap = pkt.len + 1;
	e.scratch = xmalloc(e.scratch_cap);
	msgpack_packer_init(&e.pk, out, buf_write);
	msgpack_pack_map(&e.pk, 2 + (pkt.len != 0) + (pkt.id >= 0));
	msgpack_pack_str_with_body(&e.pk, "type", 4);
	msgpack_pack_int(&e.pk, (int)type);
	msgpack_pack_str_with_body(&e.pk, "nsp", 3);
	msgpack_pack_str_with_body(&e.pk, pkt.nsp, pkt.nsp_len);
	if (pkt.len) {
		msgpack_pack_str_with_body(&e.pk, "data", 4);
		if (pack_value(&e, (struct json_span){ pkt.data, pkt.len }, 0) < 0)
			goto out;
	}
	if (pkt.id >= 0) {
		msgpack_pack_str_with_body(&e.pk, "id", 2);
		msgpack_pack_uint64(&e.pk, (uint64_t)pkt.id);
	}
	r = 0;
out:
	free(e.scratch);
	if (r < 0) {
		free(out->data);
		memset(out, 0, sizeof(*out));
	}
	return r;
}
