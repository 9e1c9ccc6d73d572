/* relay.c - the cluster's broadcast message (see relay.h). Layout, little
 * endian: "PLY1", u8 flags (bit 0: everyone; bit 1: arguments present;
 * bit 2: plain arguments present), u64 incarnation, u64 serial, u32 nargs,
 * then strings as u32 length + bytes: origin, namespace, event, arguments,
 * plain arguments (both present even when absent: empty), then the lists
 * as u32 count + strings: rooms, excepted rooms, excepted socket ids,
 * attachments. */
#include "wire/relay.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"

#define RELAY_MAGIC "PLY1"
#define RELAY_EVERYONE 1u
#define RELAY_HAS_ARGS 2u
#define RELAY_HAS_PLAIN 4u
/* magic, flags, incarnation, serial, nargs */
#define RELAY_HEAD (4 + 1 + 8 + 8 + 4)

static char *put_u32(char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		*p++ = (char)(v >> (8 * i));
	return p;
}

static char *put_u64(char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		*p++ = (char)(v >> (8 * i));
	return p;
}

static char *put_str(char *p, const char *s, size_t len)
{
	p = put_u32(p, (uint32_t)len);
	if (len)
		memcpy(p, s, len);
	return p + len;
}

static size_t list_size(const struct relay_list *l)
{
	size_t n = 4;

	for (size_t i = 0; i < l->n; i++)
		n += 4 + l->lens[i];
	return n;
}

static char *put_list(char *p, const struct relay_list *l)
{
	p = put_u32(p, (uint32_t)l->n);
	for (size_t i = 0; i < l->n; i++)
		p = put_str(p, l->v[i], l->lens[i]);
	return p;
}

char *relay_encode(const struct relay_msg *m, size_t *len)
{
	size_t n = RELAY_HEAD + 4 + m->origin_len + 4 + m->nsp_len + 4 + m->event_len + 4 +
		   (m->args ? m->args_len : 0) + 4 + (m->plain ? m->plain_len : 0) +
		   list_size(&m->rooms) + list_size(&m->except_rooms) +
		   list_size(&m->except_sids) + list_size(&m->att);
	char *buf = xmalloc(n), *p = buf;
	unsigned flags = (m->everyone ? RELAY_EVERYONE : 0) | (m->args ? RELAY_HAS_ARGS : 0) |
			 (m->plain ? RELAY_HAS_PLAIN : 0);

	memcpy(p, RELAY_MAGIC, 4);
	p += 4;
	*p++ = (char)flags;
	p = put_u64(p, m->incarnation);
	p = put_u64(p, m->serial);
	p = put_u32(p, m->nargs);
	p = put_str(p, m->origin, m->origin_len);
	p = put_str(p, m->nsp, m->nsp_len);
	p = put_str(p, m->event, m->event_len);
	p = put_str(p, m->args, m->args ? m->args_len : 0);
	p = put_str(p, m->plain, m->plain ? m->plain_len : 0);
	p = put_list(p, &m->rooms);
	p = put_list(p, &m->except_rooms);
	p = put_list(p, &m->except_sids);
	p = put_list(p, &m->att);
	*len = (size_t)(p - buf);
	return buf;
}

/* A reader over the message: `p` advances; `end` bounds it. */
struct cursor {
	const unsigned char *p, *end;
};

static int get_u32(struct cursor *c, uint32_t *v)
{
	if (c->end - c->p < 4)
		return -EBADMSG;
	*v = 0;
	for (int i = 0; i < 4; i++)
		*v |= (uint32_t)c->p[i] << (8 * i);
	c->p += 4;
	return 0;
}

static int get_u64(struct cursor *c, uint64_t *v)
{
	if (c->end - c->p < 8)
		return -EBADMSG;
	*v = 0;
	for (int i = 0; i < 8; i++)
		*v |= (uint64_t)c->p[i] << (8 * i);
	c->p += 8;
	return 0;
}

static int get_str(struct cursor *c, const char **s, size_t *len)
{
	uint32_t n;

	if (get_u32(c, &n) < 0 || (size_t)(c->end - c->p) < n)
		return -EBADMSG;
	*s = (const char *)c->p;
	*len = n;
	c->p += n;
	return 0;
}

static int get_list(struct cursor *c, struct relay_list *l)
{
	uint32_t n;

	if (get_u32(c, &n) < 0)
		return -EBADMSG;
	/* Each entry takes four bytes at least: a count past what is left is
	 * refused before anything is allocated for it. */
	if (n > (size_t)(c->end - c->p) / 4)
		return -EBADMSG;
	l->n = n;
	l->v = xcalloc(n, sizeof(*l->v));
	l->lens = xcalloc(n, sizeof(*l->lens));
	for (uint32_t i = 0; i < n; i++)
		if (get_str(c, &l->v[i], &l->lens[i]) < 0)
			return -EBADMSG;
	return 0;
}

int relay_decode(const char *p, size_t len, struct relay_msg *m)
{
	struct cursor c = { (const unsigned char *)p, (const unsigned char *)p + len };
	uint32_t nargs;
	unsigned flags;
	int rc = -EBADMSG;

	memset(m, 0, sizeof(*m));
	if (len < RELAY_HEAD || memcmp(p, RELAY_MAGIC, 4) != 0)
		return -EBADMSG;
	c.p += 4;
	flags = *c.p++;
	if (get_u64(&c, &m->incarnation) < 0 || get_u64(&c, &m->serial) < 0 ||
	    get_u32(&c, &nargs) < 0 || get_str(&c, &m->origin, &m->origin_len) < 0 ||
	    get_str(&c, &m->nsp, &m->nsp_len) < 0 || get_str(&c, &m->event, &m->event_len) < 0 ||
	    get_str(&c, &m->args, &m->args_len) < 0 || get_str(&c, &m->plain, &m->plain_len) < 0)
		goto out;
	m->nargs = nargs;
	m->everyone = (flags & RELAY_EVERYONE) != 0;
	if (!(flags & RELAY_HAS_ARGS))
		m->args = NULL, m->args_len = 0;
	if (!(flags & RELAY_HAS_PLAIN))
		m->plain = NULL, m->plain_len = 0;
	if (get_list(&c, &m->rooms) < 0 || get_list(&c, &m->except_rooms) < 0 ||
	    get_list(&c, &m->except_sids) < 0 || get_list(&c, &m->att) < 0)
		goto out;
	/* Nothing may follow: a longer message is another version's. */
	if (c.p != c.end)
		goto out;
	rc = 0;
out:
	if (rc < 0)
		relay_msg_fini(m);
	return rc;
}

static void list_free(struct relay_list *l)
{
	free(l->v);
	free(l->lens);
}

void relay_msg_fini(struct relay_msg *m)
{
	list_free(&m->rooms);
	list_free(&m->except_rooms);
	list_free(&m->except_sids);
	list_free(&m->att);
	memset(m, 0, sizeof(*m));
}
