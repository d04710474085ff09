#include "report.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batond.h"
#include "ctl.h"
#include "listener.h"
#include "pool.h"
#include "version.h"

int report_targets(const char *name, struct target **out, char *err,
		   size_t errlen)
{
	struct program *p;
	int n = 0;

	*out = NULL;
	if (strcmp(name, "all") == 0) {
		TAILQ_FOREACH(p, &batond.programs, link)
			n++;
		if (!(*out = calloc(n ? n : 1, sizeof(**out))))
			goto nomem;
		n = 0;
		TAILQ_FOREACH(p, &batond.programs, link)
			(*out)[n++] = (struct target){p, -1};
		return n;
	}
	char prog[CFG_NAME_MAX + 1];
	const char *colon = strchr(name, ':');
	size_t plen = colon ? (size_t)(colon - name) : strlen(name);
	if (plen == 0 || plen >= sizeof(prog)) {
		snprintf(err, errlen, "no such program '%.*s'", (int)(plen < 40 ? plen : 40), name);
		return -1;
	}
	memcpy(prog, name, plen);
	prog[plen] = 0;
	if (!(p = pool_find(prog))) {
		snprintf(err, errlen, "no such program '%s'", prog);
		return -1;
	}
	int slot = -1;
	if (colon) {
		char *end;
		errno = 0;
		long v = strtol(colon + 1, &end, 10);
		if (!colon[1] || *end || errno || v < 0 || colon[1] == '+' || colon[1] == '-') {
			snprintf(err, errlen, "bad worker '%s': want PROGRAM:SLOT with a slot number", name);
			return -1;
		}
		if (v >= p->nslots || p->slots[v]->removing) {
			snprintf(err, errlen, "no such worker '%s' (%s has slots 0..%d)", name,
				 p->cfg.name, pool_nslots_active(p) - 1);
			return -1;
		}
		slot = (int)v;
	}
	if (!(*out = calloc(1, sizeof(**out))))
		goto nomem;
	(*out)[0] = (struct target){p, slot};
	return 1;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static void json_str(struct evbuffer *out, const char *s)
{
	char buf[256];
	size_t need = ctl_json_str(buf, sizeof(buf), s);
	if (need < sizeof(buf)) {
		evbuffer_add(out, buf, need);
		return;
	}
	char *big = malloc(need + 1);
	if (big) {
		ctl_json_str(big, need + 1, s);
		evbuffer_add(out, big, need);
		free(big);
	} else {
		evbuffer_add(out, "\"\"", 2);
	}
}

static void format_uptime(uint64_t ms, char *buf, size_t size)
{
	uint64_t s = ms / 1000;
	snprintf(buf, size, "%llu:%02llu:%02llu", (unsigned long long)(s / 3600),
		 (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
}

static uint32_t worker_conns(const struct worker *w)
{
	return w->active + w->inflight + w->queued;
}

static int wanted(const struct target *t, int n, const struct program *p, int slot)
{
	if (n == 0)
		return 1;
	for (int i = 0; i < n; i++)
		if (t[i].prog == p && (t[i].slot < 0 || t[i].slot == slot))
			return 1;
	return 0;
}

static int listed(const struct target *t, int n, const struct program *p)
{
	for (int i = 0; i < n; i++)
		if (t[i].prog == p)
			return 1;
	return n == 0;
}

/* One program: its workers, and slots that have none. 1 if all RUNNING. */
static int status_program(struct evbuffer *out, int json, const struct program *p,
			  const struct target *t, int n, uint64_t now, int *first)
{
	const struct worker *w;
	int all_running = 1;
	char up[32];

	for (int i = 0; i < p->nslots; i++) {
		const struct slot *s = p->slots[i];
		int shown = 0;
		if (!wanted(t, n, p, i))
			continue;
		TAILQ_FOREACH(w, &p->workers, link) {
			if (w->slot != i)
				continue;
			shown = 1;
			if (w->state != WS_RUNNING)
				all_running = 0;
			if (json) {
				evbuffer_add_printf(out,
						    "%s\n{\"slot\":%d,\"pid\":%d,\"state\":\"%s\",\"generation\":%d,"
						    "\"conns\":%u,\"handed\":%llu,\"uptime_s\":%llu,\"capacity\":%u}",
						    *first ? "" : ",", i, (int)w->pid,
						    pool_state_name(w->state), w->generation,
						    worker_conns(w), (unsigned long long)w->handed,
						    (unsigned long long)((now - w->started_ms) / 1000),
						    w->capacity);
				*first = 0;
			} else {
				char name[CFG_NAME_MAX + 16];
				snprintf(name, sizeof(name), "%s:%d", p->cfg.name, i);
				format_uptime(now - w->started_ms, up, sizeof(up));
				evbuffer_add_printf(out, "%-14s %-9s pid %-7d gen %-3d conns %-6u uptime %s\n",
						    name, pool_state_name(w->state), (int)w->pid,
						    w->generation, worker_conns(w), up);
			}
		}
		if (shown || s->removing)
			continue; /* a slot scaled away is not listed once empty */
		/* No process: show the slot's own state. */
		all_running = 0;
		const char *state = pool_slot_state_name(s->state);
		if (json) {
			evbuffer_add_printf(out,
					    "%s\n{\"slot\":%d,\"pid\":null,\"state\":\"%s\",\"generation\":null,"
					    "\"conns\":0,\"handed\":0,\"uptime_s\":null,\"last_exit\":",
					    *first ? "" : ",", i, state);
			json_str(out, s->last_exit);
			evbuffer_add(out, "}", 1);
			*first = 0;
		} else {
			char name[CFG_NAME_MAX + 16];
			snprintf(name, sizeof(name), "%s:%d", p->cfg.name, i);
			evbuffer_add_printf(out, "%-14s %-9s pid %-7s gen %-3s conns %-6u uptime %s%s%s\n",
					    name, state, "-", "-", 0u, "-",
					    s->last_exit[0] ? "  last: " : "", s->last_exit);
		}
	}
	return all_running;
}

int report_status(struct evbuffer *out, int json, const struct target *t,
		  int n, uint64_t now)
{
	struct program *p;
	struct listener *l;
	int all_running = 1, firstp = 1;

	if (json)
		evbuffer_add(out, "{\"programs\":[", 13);
	TAILQ_FOREACH(p, &batond.programs, link) {
		if (!listed(t, n, p))
			continue;
		int first = 1;
		if (json) {
			evbuffer_add_printf(out, "%s\n{\"name\":", firstp ? "" : ",");
			json_str(out, p->cfg.name);
			evbuffer_add_printf(out,
					    ",\"generation\":%d,\"slots\":%d,\"queued\":%u,\"accepted\":%llu,"
					    "\"acked\":%llu,\"dropped\":%llu,\"restarts\":%llu,\"workers\":[",
					    p->generation, pool_nslots_active(p), p->nqueued,
					    (unsigned long long)p->accepted, (unsigned long long)p->acked,
					    (unsigned long long)p->dropped,
					    (unsigned long long)p->restarts);
		}
		firstp = 0;
		if (!status_program(out, json, p, t, n, now, &first))
			all_running = 0;
		if (json)
			evbuffer_add(out, "\n]}", 3);
	}
	if (json)
		evbuffer_add(out, "\n],\"listeners\":[", 16);
	int firstl = 1;
	TAILQ_FOREACH(l, &batond.listeners, link) {
		if (n && !listed(t, n, l->prog))
			continue;
		if (json) {
			evbuffer_add_printf(out, "%s\n{\"name\":", firstl ? "" : ",");
			json_str(out, l->cfg.name);
			evbuffer_add(out, ",\"address\":", 11);
			json_str(out, l->cfg.address);
			evbuffer_add(out, ",\"bound\":", 9);
			json_str(out, l->bound);
			evbuffer_add(out, ",\"program\":", 11);
			json_str(out, l->cfg.program);
			evbuffer_add_printf(out, ",\"accepted\":%llu,\"paused\":%s}",
					    (unsigned long long)l->accepted,
					    l->paused ? "true" : "false");
		} else {
			evbuffer_add_printf(out, "listener %-12s %-28s program %-12s accepted %llu%s\n",
					    l->cfg.name, l->bound[0] ? l->bound : l->cfg.address,
					    l->cfg.program, (unsigned long long)l->accepted,
					    l->paused ? "  paused" : "");
		}
		firstl = 0;
	}
	if (json)
		evbuffer_add(out, "\n]}\n", 4);
	return all_running ? 0 : 3;
}

static void metric_head(struct evbuffer *out, const char *name, const char *type,
			const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One counter or gauge per program; field is read by the callback. */
static void per_program(struct evbuffer *out, const char *name, const char *type,
			const char *help, uint64_t (*get)(const struct program *))
{
	struct program *p;
	metric_head(out, name, type, help);
	TAILQ_FOREACH(p, &batond.programs, link)
		evbuffer_add_printf(out, "%s{program=\"%s\"} %llu\n", name, p->cfg.name,
				    (unsigned long long)get(p));
}

static uint64_t get_handed(const struct program *p) { return p->handed; }
static uint64_t get_acked(const struct program *p) { return p->acked; }
static uint64_t get_redispatched(const struct program *p) { return p->redispatched; }
static uint64_t get_dropped(const struct program *p) { return p->dropped; }
static uint64_t get_lost(const struct program *p) { return p->lost; }
static uint64_t get_accepted(const struct program *p) { return p->accepted; }
static uint64_t get_queued(const struct program *p) { return p->nqueued; }
static uint64_t get_restarts(const struct program *p) { return p->restarts; }
static uint64_t get_generation(const struct program *p) { return (uint64_t)p->generation; }

void report_metrics(struct evbuffer *out)
{
	struct listener *l;
	struct program *p;

	metric_head(out, "baton_build_info", "gauge", "batond version.");
	evbuffer_add_printf(out, "baton_build_info{version=\"%s\"} 1\n", BATON_VERSION);

	metric_head(out, "baton_listener_connections_accepted_total", "counter",
		    "Connections accepted, by listener.");
	TAILQ_FOREACH(l, &batond.listeners, link)
		evbuffer_add_printf(out, "baton_listener_connections_accepted_total{listener=\"%s\",program=\"%s\"} %llu\n",
				    l->cfg.name, l->cfg.program, (unsigned long long)l->accepted);
	metric_head(out, "baton_listener_paused", "gauge",
		    "1 while a listener is not accepting (no worker has credit, or out of fds).");
	TAILQ_FOREACH(l, &batond.listeners, link)
		evbuffer_add_printf(out, "baton_listener_paused{listener=\"%s\"} %d\n",
				    l->cfg.name, l->paused);
	metric_head(out, "baton_listener_pauses_total", "counter",
		    "Times a listener stopped polling (no credit, or out of fds).");
	TAILQ_FOREACH(l, &batond.listeners, link)
		evbuffer_add_printf(out, "baton_listener_pauses_total{listener=\"%s\"} %llu\n",
				    l->cfg.name, (unsigned long long)l->pauses);

	per_program(out, "baton_connections_accepted_total", "counter",
		    "Connections accepted for a program.", get_accepted);
	per_program(out, "baton_connections_handed_total", "counter",
		    "Connections sent to a worker (a re-dispatch counts again).", get_handed);
	per_program(out, "baton_connections_acked_total", "counter",
		    "Connections a worker acknowledged: from then on the worker's.", get_acked);
	per_program(out, "baton_connections_redispatched_total", "counter",
		    "Unacknowledged connections taken back from a worker that died.", get_redispatched);
	per_program(out, "baton_connections_dropped_total", "counter",
		    "Connections closed by batond unserved (queue_timeout, shutdown).", get_dropped);
	per_program(out, "baton_connections_lost_total", "counter",
		    "Acknowledged connections still open when their worker died.", get_lost);
	per_program(out, "baton_queue_depth", "gauge",
		    "Accepted connections waiting for a worker.", get_queued);
	per_program(out, "baton_worker_restarts_total", "counter",
		    "Workers restarted after exiting.", get_restarts);
	per_program(out, "baton_program_generation", "gauge",
		    "Current generation of a program.", get_generation);

	metric_head(out, "baton_workers", "gauge", "Workers by state; slots without a process by the slot's state.");
	TAILQ_FOREACH(p, &batond.programs, link) {
		int count[WS_COUNT] = {0}, slots[SLOT_COUNT] = {0};
		struct worker *w;
		TAILQ_FOREACH(w, &p->workers, link)
			count[w->state]++;
		for (int i = 0; i < p->nslots; i++)
			if (!p->slots[i]->removing && !pool_slot_live(p->slots[i]) &&
			    p->slots[i]->state != SLOT_UP)
				slots[p->slots[i]->state]++;
		for (int i = 0; i < WS_COUNT; i++)
			evbuffer_add_printf(out, "baton_workers{program=\"%s\",state=\"%s\"} %d\n",
					    p->cfg.name, pool_state_name(i), count[i]);
		for (int i = SLOT_BACKOFF; i <= SLOT_STOPPED; i++)
			evbuffer_add_printf(out, "baton_workers{program=\"%s\",state=\"%s\"} %d\n",
					    p->cfg.name, pool_slot_state_name(i), slots[i]);
	}

	metric_head(out, "baton_handoff_latency_seconds", "histogram",
		    "From accept to the worker's acknowledgement.");
	TAILQ_FOREACH(p, &batond.programs, link) {
		uint64_t cum = 0;
		for (int i = 0; i < DISPATCH_LAT_BUCKETS; i++) {
			cum += p->lat_bucket[i];
			evbuffer_add_printf(out, "baton_handoff_latency_seconds_bucket{program=\"%s\",le=\"%g\"} %llu\n",
					    p->cfg.name, dispatch_lat_bounds_us[i] / 1e6,
					    (unsigned long long)cum);
		}
		cum += p->lat_bucket[DISPATCH_LAT_BUCKETS];
		evbuffer_add_printf(out, "baton_handoff_latency_seconds_bucket{program=\"%s\",le=\"+Inf\"} %llu\n",
				    p->cfg.name, (unsigned long long)cum);
		evbuffer_add_printf(out, "baton_handoff_latency_seconds_sum{program=\"%s\"} %.6f\n",
				    p->cfg.name, p->lat_sum_us / 1e6);
		evbuffer_add_printf(out, "baton_handoff_latency_seconds_count{program=\"%s\"} %llu\n",
				    p->cfg.name, (unsigned long long)p->lat_count);
	}

	metric_head(out, "baton_upgrades_total", "counter", "Rolling upgrades by result.");
	TAILQ_FOREACH(p, &batond.programs, link) {
		for (int i = 0; i < UPGRADE_COUNT; i++)
			evbuffer_add_printf(out, "baton_upgrades_total{program=\"%s\",result=\"%s\"} %llu\n",
					    p->cfg.name, pool_upgrade_result_name(i), (unsigned long long)p->upgrades[i]);
	}

	const struct control_stats *cs = &batond.control;
	evbuffer_add_printf(out,
			    "# HELP baton_control_clients Control socket clients connected now.\n"
			    "# TYPE baton_control_clients gauge\n"
			    "baton_control_clients %d\n"
			    "# HELP baton_control_requests_total Control requests parsed.\n"
			    "# TYPE baton_control_requests_total counter\n"
			    "baton_control_requests_total %llu\n"
			    "# HELP baton_control_refused_total Control clients refused or cut off.\n"
			    "# TYPE baton_control_refused_total counter\n"
			    "baton_control_refused_total{reason=\"busy\"} %llu\n"
			    "baton_control_refused_total{reason=\"denied\"} %llu\n"
			    "baton_control_refused_total{reason=\"bad_request\"} %llu\n",
			    cs->clients, (unsigned long long)cs->requests,
			    (unsigned long long)cs->refused_busy,
			    (unsigned long long)cs->refused_denied,
			    (unsigned long long)cs->bad_requests);
}

static int slot_served(const struct program *p, int slot)
{
	const struct worker *w;
	TAILQ_FOREACH(w, &p->workers, link)
		if (w->slot == slot && w->state == WS_RUNNING && !w->retiring && !w->broken)
			return 1;
	return 0;
}

int report_readiness(char *buf, size_t size)
{
	const struct program *p;
	size_t used = 0;
	int all = 1;

	if (size)
		buf[0] = '\0';
	TAILQ_FOREACH(p, &batond.programs, link) {
		int want = 0, running = 0;
		if (p->retired)
			continue;
		for (int i = 0; i < p->nslots; i++) {
			if (p->slots[i]->removing)
				continue;
			want++;
			running += slot_served(p, i);
		}
		all &= running >= want;
		if (used < size)
			used += (size_t)snprintf(buf + used, size - used, "%s%s %d/%d",
						 used ? ", " : "", p->cfg.name, running, want);
	}
	if (used < size)
		snprintf(buf + used, size - used, "%srunning", used ? " " : "no programs ");
	return all;
}
