/* metrics.c - counters rendered in the Prometheus text format (see
 * metrics.h). Event names are client-chosen, so at most METRICS_MAX_NAMES
 * distinct names get their own series; the rest count under "_other". */
#include "base/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/map.h"

#define METRICS_MAX_NAMES 256

static int64_t connections[METRICS_NTRANSPORTS];
static uint64_t connections_total[METRICS_NTRANSPORTS];
static uint64_t upgrades;
static uint64_t encodings;
static struct map events_in, events_out, errors, http_errors, protocol_errors, limits;
static int maps_ready;

static void ensure_maps(void)
{
	if (maps_ready)
		return;
	map_init(&events_in);
	map_init(&events_out);
	map_init(&errors);
	map_init(&http_errors);
	map_init(&protocol_errors);
	map_init(&limits);
	maps_ready = 1;
}

/* Adds `n` to the counter named `name` in `m`, creating it while there is
 * room for another name, and returns it. Counters live in the value
 * pointer's own storage, until metrics_fini. */
static uint64_t *count(struct map *m, const char *name, size_t len, uint64_t n)
{
	uint64_t *v;

	ensure_maps();
	v = map_get(m, name, len);
	if (!v) {
		if (m->count >= METRICS_MAX_NAMES) {
			name = "_other";
			len = 6;
			v = map_get(m, name, len);
		}
		if (!v) {
			v = xcalloc(1, sizeof(*v));
			map_put(m, name, len, v);
		}
	}
	*v += n;
	return v;
}

/* The counter of the event name counted last, in or out: events come in
 * runs of one name, and comparing it is cheaper than hashing it again. A
 * name that went to "_other" stays there (names are never removed). */
struct last_event {
	uint64_t *v;
	size_t len;
	char name[64];
};
static struct last_event last_in, last_out;

static void count_event(struct map *m, struct last_event *last, const char *name, size_t len,
			uint64_t n)
{
	if (last->v && len == last->len && memcmp(name, last->name, len) == 0) {
		*last->v += n;
		return;
	}
	uint64_t *v = count(m, name, len, n);
	if (len <= sizeof(last->name)) {
		last->v = v;
		last->len = len;
		memcpy(last->name, name, len);
	}
}

void metrics_connection(enum metrics_transport t, int delta)
{
	connections[t] += delta;
	if (delta > 0)
		connections_total[t]++;
}

void metrics_upgrade(void)
{
	connections[METRICS_POLLING]--;
	connections[METRICS_WEBSOCKET]++;
	upgrades++;
}

void metrics_encoding(void)
{
	encodings++;
}

void metrics_event_in(const char *name, size_t len)
{
	count_event(&events_in, &last_in, name, len, 1);
}

void metrics_event_out(const char *name, size_t len, uint64_t n)
{
	count_event(&events_out, &last_out, name, len, n);
}

void metrics_error(int status)
{
	char code[16];
	int n = snprintf(code, sizeof(code), "%d", status);

	count(&errors, code, (size_t)n, 1);
}

void metrics_http_error(int status)
{
	char code[16];
	int n = snprintf(code, sizeof(code), "%d", status);

	count(&http_errors, code, (size_t)n, 1);
}

void metrics_protocol_error(const char *kind)
{
	count(&protocol_errors, kind, strlen(kind), 1);
}

void metrics_limit(const char *which)
{
	count(&limits, which, strlen(which), 1);
}

struct text {
	char *p;
	size_t len, cap;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < t->cap - t->len)
			break;
		t->cap = t->cap * 2 + (size_t)(n > 0 ? n : 0);
		t->p = xrealloc(t->p, t->cap);
	}
	t->len += (size_t)n;
}

/* Label values are client-chosen: escape what the text format reserves. */
static void put_label(struct text *t, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\' || c == '"')
			put(t, "\\%c", c);
		else if (c == '\n')
			put(t, "\\n");
		else if (c < 0x20)
			put(t, "?");
		else
			put(t, "%c", c);
	}
}

static void put_family(struct text *t, struct map *m, const char *metric,
		       const char *label, const char *help)
{
	struct map_iter it;
	struct map_entry *e;

	put(t, "# HELP %s %s\n# TYPE %s counter\n", metric, help, metric);
	map_iter_init(&it, m);
	while ((e = map_next(&it))) {
		put(t, "%s{%s=\"", metric, label);
		put_label(t, e->key, e->klen);
		put(t, "\"} %llu\n", (unsigned long long)*(uint64_t *)e->value);
	}
}

static struct metrics_value *registered, **registered_tail = &registered;

void metrics_register(struct metrics_value *v)
{
	for (const struct metrics_value *w = registered; w; w = w->next)
		if (w == v)
			return;
	v->next = NULL;
	*registered_tail = v;
	registered_tail = &v->next;
}

/* A series' name without its labels. */
static const char *family(const char *name, char *out, size_t cap)
{
	size_t n = strcspn(name, "{");

	if (n >= cap)
		n = cap - 1;
	memcpy(out, name, n);
	out[n] = '\0';
	return out;
}

char *metrics_render(size_t *len)
{
	static const char *const names[] = { "polling", "websocket", "plain" };
	struct text t = { xmalloc(4096), 0, 4096 };
	char fam[128];

	ensure_maps();
	put(&t, "# HELP parley_connections Open connections by transport.\n"
		"# TYPE parley_connections gauge\n");
	for (int i = 0; i < METRICS_NTRANSPORTS; i++)
		put(&t, "parley_connections{transport=\"%s\"} %lld\n", names[i],
		    (long long)connections[i]);
	put(&t, "# HELP parley_connections_total Connections opened by first transport.\n"
		"# TYPE parley_connections_total counter\n");
	for (int i = 0; i < METRICS_NTRANSPORTS; i++)
		put(&t, "parley_connections_total{transport=\"%s\"} %llu\n", names[i],
		    (unsigned long long)connections_total[i]);
	put(&t, "# HELP parley_upgrades_total Polling sessions upgraded to WebSocket.\n"
		"# TYPE parley_upgrades_total counter\nparley_upgrades_total %llu\n",
	    (unsigned long long)upgrades);
	put(&t, "# HELP parley_event_encodings_total Event frames encoded (a broadcast "
		"encodes once per wire format, whatever its audience).\n"
		"# TYPE parley_event_encodings_total counter\nparley_event_encodings_total %llu\n",
	    (unsigned long long)encodings);
	put_family(&t, &events_in, "parley_events_in_total", "event",
		   "Client events received, by name.");
	put_family(&t, &events_out, "parley_events_out_total", "event",
		   "Events delivered to sockets, by name.");
	put_family(&t, &errors, "parley_errors_total", "code",
		   "error events sent to clients, by status code.");
	put_family(&t, &http_errors, "parley_http_errors_total", "code",
		   "HTTP error responses, by status code.");
	put_family(&t, &limits, "parley_limits_total", "limit",
		   "Times a limit tripped, by limit.");
	put_family(&t, &protocol_errors, "parley_protocol_errors_total", "kind",
		   "Malformed packets and requests, by kind.");
	for (const struct metrics_value *v = registered; v; v = v->next) {
		if (v->help)
			put(&t, "# HELP %s %s\n# TYPE %s %s\n", family(v->name, fam, sizeof(fam)),
			    v->help, fam, v->type);
		if (v->count)
			put(&t, "%s %llu\n", v->name, (unsigned long long)*v->count);
		else if (v->usec)
			put(&t, "%s %.6f\n", v->name, (double)*v->usec / 1e6);
		else
			put(&t, "%s %lld\n", v->name, v->read());
	}
	*len = t.len;
	return t.p;
}

static void free_counters(struct map *m)
{
	struct map_iter it;
	struct map_entry *e;

	map_iter_init(&it, m);
	while ((e = map_next(&it)))
		free(e->value);
	map_fini(m);
}

void metrics_fini(void)
{
	if (!maps_ready)
		return;
	free_counters(&events_in);
	free_counters(&events_out);
	free_counters(&errors);
	free_counters(&http_errors);
	free_counters(&protocol_errors);
	free_counters(&limits);
	last_in.v = last_out.v = NULL;
	maps_ready = 0;
}
