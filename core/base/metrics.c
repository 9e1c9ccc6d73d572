/* metrics.c - counters rendered in the Prometheus text format (see
 * metrics.h). Event names are client-chosen, so at most METRICS_MAX_NAMES
 * distinct names get their own series; the rest count under "_other". */
#include "base/metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/map.h"

#define METRICS_MAX_NAMES 256

static int64_t connections[METRICS_NTRANSPORTS];
static uint64_t connections_total[METRICS_NTRANSPORTS];
static uint64_t upgrades;
static uint64_t encodings;
static struct map events_in, events_out, errors, http_errors, protocol_errors, limits;
static struct map event_times; /* name -> struct metrics_histogram */
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
	map_init(&event_times);
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

/* Upper bounds of the buckets, in µs and as the text shows them. */
static const uint64_t bucket_usec[METRICS_BUCKETS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000,
};
static const char *const bucket_le[METRICS_BUCKETS] = {
	"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
	"0.1", "0.25", "0.5", "1", "2.5",
};
static struct metrics_histogram *histograms, **histograms_tail = &histograms;

void metrics_histogram_register(struct metrics_histogram *h)
{
	for (const struct metrics_histogram *w = histograms; w; w = w->next)
		if (w == h)
			return;
	h->next = NULL;
	*histograms_tail = h;
	histograms_tail = &h->next;
}

void metrics_observe(struct metrics_histogram *h, uint64_t usec)
{
	int i = 0;

	while (i < METRICS_BUCKETS && usec > bucket_usec[i])
		i++;
	__atomic_fetch_add(&h->bucket[i], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->sum_usec, usec, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
}

void metrics_observe_event(const char *name, size_t len, uint64_t usec)
{
	struct metrics_histogram *h;

	ensure_maps();
	h = map_get(&event_times, name, len);
	if (!h) {
		if (event_times.count >= METRICS_MAX_NAMES) {
			name = "_other";
			len = 6;
			h = map_get(&event_times, name, len);
		}
		if (!h) {
			h = xcalloc(1, sizeof(*h));
			map_put(&event_times, name, len, h);
		}
	}
	metrics_observe(h, usec);
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

/* One histogram's series; `label` is `name="value"` or NULL. */
static void put_histogram_series(struct text *t, const char *metric, const char *label_name,
				 const char *label, size_t label_len,
				 const struct metrics_histogram *h)
{
	uint64_t cum = 0;

	for (int i = 0; i <= METRICS_BUCKETS; i++) {
		cum += __atomic_load_n(&h->bucket[i], __ATOMIC_RELAXED);
		put(t, "%s_bucket{", metric);
		if (label_name) {
			put(t, "%s=\"", label_name);
			put_label(t, label, label_len);
			put(t, "\",");
		}
		put(t, "le=\"%s\"} %llu\n", i < METRICS_BUCKETS ? bucket_le[i] : "+Inf",
		    (unsigned long long)cum);
	}
	/* The count is the +Inf bucket's sum, read once: a concurrent
	 * observation cannot make them differ. */
	if (label_name) {
		put(t, "%s_sum{%s=\"", metric, label_name);
		put_label(t, label, label_len);
		put(t, "\"} %.6f\n%s_count{%s=\"", (double)__atomic_load_n(&h->sum_usec,
		    __ATOMIC_RELAXED) / 1e6, metric, label_name);
		put_label(t, label, label_len);
		put(t, "\"} %llu\n", (unsigned long long)cum);
	} else {
		put(t, "%s_sum %.6f\n%s_count %llu\n", metric,
		    (double)__atomic_load_n(&h->sum_usec, __ATOMIC_RELAXED) / 1e6, metric,
		    (unsigned long long)cum);
	}
}

/* The process: CPU, resident memory, open and most file descriptors. */
static void put_process(struct text *t)
{
	struct rusage ru;
	struct rlimit rl;
	long long rss = 0, fds = 0;
	FILE *f;
	DIR *d;

	getrusage(RUSAGE_SELF, &ru);
	put(t, "# HELP process_cpu_seconds_total User and system CPU time spent.\n"
		"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.6f\n",
	    (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
	f = fopen("/proc/self/statm", "r");
	if (f) {
		long long size;
		if (fscanf(f, "%lld %lld", &size, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	put(t, "# HELP process_resident_memory_bytes Resident memory size.\n"
		"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %lld\n",
	    rss * sysconf(_SC_PAGESIZE));
	d = opendir("/proc/self/fd");
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				fds++;
		closedir(d);
		fds--; /* the directory's own descriptor */
	}
	put(t, "# HELP process_open_fds Open file descriptors.\n"
		"# TYPE process_open_fds gauge\nprocess_open_fds %lld\n", fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		put(t, "# HELP process_max_fds The most file descriptors the process may open.\n"
			"# TYPE process_max_fds gauge\nprocess_max_fds %lld\n",
		    rl.rlim_cur == RLIM_INFINITY ? -1LL : (long long)rl.rlim_cur);
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
	put(&t, "# HELP parley_event_seconds The loop's time handling a client event, by name "
		"(until its handler first waits for the store).\n"
		"# TYPE parley_event_seconds histogram\n");
	{
		struct map_iter it;
		struct map_entry *e;

		map_iter_init(&it, &event_times);
		while ((e = map_next(&it)))
			put_histogram_series(&t, "parley_event_seconds", "event", e->key, e->klen,
					     e->value);
	}
	for (const struct metrics_histogram *h = histograms; h; h = h->next) {
		put(&t, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
		put_histogram_series(&t, h->name, NULL, NULL, 0, h);
	}
	put_process(&t);
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
	free_counters(&event_times);
	last_in.v = last_out.v = NULL;
	maps_ready = 0;
}
