/*
 * Status and metrics formatting, and NAME resolution, over a pool built by
 * hand (no processes: the report reads only the structures).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "batond.h"
#include "ctl.h"
#include "listener.h"
#include "pool.h"
#include "report.h"

#define NOW 1000000 /* ms */

static struct program *web, *api;
static struct listener lis;
static struct worker wk[3];

static struct program *program(const char *name, int workers)
{
	struct cfg_program cfg = {0};
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	cfg.workers = workers;
	cfg.capacity = 100;
	struct program *p = pool_program_new(&cfg);
	assert_non_null(p);
	TAILQ_INSERT_TAIL(&batond.programs, p, link);
	return p;
}

static void worker(struct worker *w, struct program *p, int slot, pid_t pid,
		   enum worker_state st)
{
	memset(w, 0, sizeof(*w));
	w->prog = p;
	w->slot = slot;
	w->pid = pid;
	w->state = st;
	w->generation = 1;
	w->capacity = 100;
	w->started_ms = NOW - 3723000; /* 1:02:03 ago */
	TAILQ_INIT(&w->outbox);
	TAILQ_INIT(&w->unacked);
	TAILQ_INSERT_TAIL(&p->workers, w, link);
	p->slots[slot]->state = SLOT_UP;
}

static int setup(void **state)
{
	(void)state;
	TAILQ_INIT(&batond.programs);
	TAILQ_INIT(&batond.listeners);
	web = program("web", 2);
	api = program("api", 1);
	worker(&wk[0], web, 0, 101, WS_RUNNING);
	worker(&wk[1], web, 1, 102, WS_RUNNING);
	wk[1].active = 3;
	wk[1].inflight = 1;
	wk[1].handed = 9;
	worker(&wk[2], api, 0, 201, WS_RUNNING);
	memset(&lis, 0, sizeof(lis));
	snprintf(lis.cfg.name, sizeof(lis.cfg.name), "pub");
	snprintf(lis.cfg.address, sizeof(lis.cfg.address), "tcp:127.0.0.1:0");
	snprintf(lis.cfg.program, sizeof(lis.cfg.program), "web");
	snprintf(lis.bound, sizeof(lis.bound), "127.0.0.1:8080");
	lis.prog = web;
	lis.accepted = 42;
	lis.fd = -1;
	TAILQ_INSERT_TAIL(&batond.listeners, &lis, link);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	struct program *p;
	while ((p = TAILQ_FIRST(&batond.programs))) {
		TAILQ_REMOVE(&batond.programs, p, link);
		TAILQ_INIT(&p->workers); /* the workers are static */
		pool_program_free(p);
	}
	TAILQ_INIT(&batond.listeners);
	return 0;
}

/* The report as a NUL-terminated string; free it. */
static char *status(int json, const struct target *t, int n, int *code)
{
	struct evbuffer *b = evbuffer_new();
	*code = report_status(b, json, t, n, NOW);
	size_t len = evbuffer_get_length(b);
	char *s = calloc(1, len + 1);
	evbuffer_remove(b, s, len);
	evbuffer_free(b);
	return s;
}

static void test_status_text(void **state)
{
	(void)state;
	int code;
	char *s = status(0, NULL, 0, &code);

	assert_int_equal(code, 0);
	assert_non_null(strstr(s, "web:0          RUNNING   pid 101     gen 1   conns 0      uptime 1:02:03\n"));
	/* conns counts acked, in flight and queued */
	assert_non_null(strstr(s, "web:1          RUNNING   pid 102     gen 1   conns 4      uptime 1:02:03\n"));
	assert_non_null(strstr(s, "api:0          RUNNING   pid 201"));
	assert_non_null(strstr(s, "listener pub"));
	assert_non_null(strstr(s, "127.0.0.1:8080"));
	assert_non_null(strstr(s, "accepted 42"));
	assert_null(strstr(s, "paused"));
	/* web's lines come before api's, in slot order */
	assert_true(strstr(s, "web:1") < strstr(s, "api:0"));
	assert_true(strstr(s, "web:0") < strstr(s, "web:1"));
	free(s);
}

static void test_status_not_running(void **state)
{
	(void)state;
	int code;

	/* A draining worker, and a slot with no process. */
	wk[0].state = WS_DRAINING;
	TAILQ_REMOVE(&web->workers, &wk[1], link);
	web->slots[1]->state = SLOT_FATAL;
	snprintf(web->slots[1]->last_exit, sizeof(web->slots[1]->last_exit), "exit=1");
	lis.paused = 1;
	char *s = status(0, NULL, 0, &code);
	assert_int_equal(code, 3);
	assert_non_null(strstr(s, "web:0          DRAINING  pid 101"));
	assert_non_null(strstr(s, "web:1          FATAL     pid -       gen -   conns 0      uptime -  last: exit=1\n"));
	assert_non_null(strstr(s, "paused"));
	free(s);

	/* Only api is asked about: it is fine. */
	struct target t = {api, -1};
	s = status(0, &t, 1, &code);
	assert_int_equal(code, 0);
	assert_null(strstr(s, "web:"));
	assert_null(strstr(s, "listener pub")); /* pub feeds web */
	free(s);

	/* One slot of web. */
	t = (struct target){web, 1};
	s = status(0, &t, 1, &code);
	assert_int_equal(code, 3);
	assert_null(strstr(s, "web:0"));
	assert_non_null(strstr(s, "web:1"));
	free(s);
}

static void test_status_json(void **state)
{
	(void)state;
	int code;
	TAILQ_REMOVE(&web->workers, &wk[1], link);
	web->slots[1]->state = SLOT_BACKOFF;
	snprintf(web->slots[1]->last_exit, sizeof(web->slots[1]->last_exit), "say \"hi\"\\");
	char *s = status(1, NULL, 0, &code);

	assert_int_equal(code, 3);
	assert_int_equal(strncmp(s, "{\"programs\":[", 13), 0);
	assert_non_null(strstr(s, "{\"slot\":0,\"pid\":101,\"state\":\"RUNNING\",\"generation\":1,"
				  "\"conns\":0,\"handed\":0,\"uptime_s\":3723,"));
	assert_non_null(strstr(s, "{\"slot\":1,\"pid\":null,\"state\":\"BACKOFF\""));
	assert_non_null(strstr(s, "\"last_exit\":\"say \\\"hi\\\"\\\\\""));
	assert_non_null(strstr(s, "\"listeners\":["));
	assert_non_null(strstr(s, "{\"name\":\"pub\",\"address\":\"tcp:127.0.0.1:0\",\"bound\":\"127.0.0.1:8080\","
				  "\"program\":\"web\",\"accepted\":42,\"paused\":false}"));
	/* Balanced, and every line short enough for one protocol line. */
	int depth = 0, instr = 0;
	size_t line = 0;
	for (const char *p = s; *p; p++) {
		if (instr) {
			if (*p == '\\')
				p++;
			else if (*p == '"')
				instr = 0;
			continue;
		}
		if (*p == '"')
			instr = 1;
		depth += (*p == '{' || *p == '[') - (*p == '}' || *p == ']');
		assert_true(depth >= 0);
		line = *p == '\n' ? 0 : line + 1;
		assert_true(line < CTL_LINE_MAX - 3);
	}
	assert_int_equal(depth, 0);
	assert_string_equal(s + strlen(s) - 3, "]}\n");
	free(s);
}

static void test_targets(void **state)
{
	(void)state;
	struct target *t;
	char err[256];

	assert_int_equal(report_targets("all", &t, err, sizeof(err)), 2);
	assert_ptr_equal(t[0].prog, web);
	assert_int_equal(t[0].slot, -1);
	assert_ptr_equal(t[1].prog, api);
	free(t);
	assert_int_equal(report_targets("web", &t, err, sizeof(err)), 1);
	assert_int_equal(t[0].slot, -1);
	free(t);
	assert_int_equal(report_targets("web:1", &t, err, sizeof(err)), 1);
	assert_ptr_equal(t[0].prog, web);
	assert_int_equal(t[0].slot, 1);
	free(t);

	static const struct {
		const char *name, *want;
	} bad[] = {
		{"nope", "no such program 'nope'"},
		{"web:2", "no such worker 'web:2' (web has slots 0..1)"},
		{"web:", "bad worker"},
		{"web:x", "bad worker"},
		{"web:-1", "bad worker"},
		{"web:+1", "bad worker"},
		{"web:1x", "bad worker"},
		{":1", "no such program"},
		{"api:0:1", "bad worker"},
		{"a-very-long-name-that-is-not-a-program-at-all", "no such program"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		t = (void *)1;
		assert_int_equal(report_targets(bad[i].name, &t, err, sizeof(err)), -1);
		assert_null(t);
		if (!strstr(err, bad[i].want))
			fail_msg("%s: got '%s', want '%s'", bad[i].name, err, bad[i].want);
	}
	/* A slot being scaled away is not addressable. */
	web->slots[1]->removing = 1;
	assert_int_equal(report_targets("web:1", &t, err, sizeof(err)), -1);
	web->slots[1]->removing = 0;
}

/* The value of the sample line that starts with prefix, or -1. */
static double sample(const char *text, const char *prefix)
{
	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		size_t n = strlen(prefix);
		if (strncmp(l, prefix, n) == 0 && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	}
	return -1;
}

static void test_metrics(void **state)
{
	(void)state;
	web->accepted = 10;
	web->acked = 9;
	web->dropped = 1;
	web->nqueued = 2;
	web->lat_bucket[0] = 3;  /* <= 100us */
	web->lat_bucket[3] = 5;  /* <= 1ms */
	web->lat_bucket[DISPATCH_LAT_BUCKETS] = 1; /* above 2.5 s */
	web->lat_count = 9;
	web->lat_sum_us = 4000000;
	wk[0].state = WS_STARTING;
	api->slots[0]->state = SLOT_FATAL;
	TAILQ_REMOVE(&api->workers, &wk[2], link);

	struct evbuffer *b = evbuffer_new();
	report_metrics(b);
	size_t len = evbuffer_get_length(b);
	char *s = calloc(1, len + 1);
	evbuffer_remove(b, s, len);
	evbuffer_free(b);

	assert_true(sample(s, "baton_connections_accepted_total{program=\"web\"}") == 10);
	assert_true(sample(s, "baton_connections_acked_total{program=\"web\"}") == 9);
	assert_true(sample(s, "baton_connections_dropped_total{program=\"web\"}") == 1);
	assert_true(sample(s, "baton_queue_depth{program=\"web\"}") == 2);
	assert_true(sample(s, "baton_listener_connections_accepted_total{listener=\"pub\",program=\"web\"}") == 42);
	assert_true(sample(s, "baton_workers{program=\"web\",state=\"STARTING\"}") == 1);
	assert_true(sample(s, "baton_workers{program=\"web\",state=\"RUNNING\"}") == 1);
	assert_true(sample(s, "baton_workers{program=\"api\",state=\"FATAL\"}") == 1);
	assert_true(sample(s, "baton_workers{program=\"api\",state=\"RUNNING\"}") == 0);
	/* Buckets are cumulative; +Inf equals the count. */
	assert_true(sample(s, "baton_handoff_latency_seconds_bucket{program=\"web\",le=\"0.0001\"}") == 3);
	assert_true(sample(s, "baton_handoff_latency_seconds_bucket{program=\"web\",le=\"0.0005\"}") == 3);
	assert_true(sample(s, "baton_handoff_latency_seconds_bucket{program=\"web\",le=\"0.001\"}") == 8);
	assert_true(sample(s, "baton_handoff_latency_seconds_bucket{program=\"web\",le=\"2.5\"}") == 8);
	assert_true(sample(s, "baton_handoff_latency_seconds_bucket{program=\"web\",le=\"+Inf\"}") == 9);
	assert_true(sample(s, "baton_handoff_latency_seconds_count{program=\"web\"}") == 9);
	assert_true(sample(s, "baton_handoff_latency_seconds_sum{program=\"web\"}") == 4.0);
	assert_true(sample(s, "baton_upgrades_total{program=\"web\",result=\"ok\"}") == 0);

	/* Text format 0.0.4: every sample's family has HELP and TYPE first. */
	for (char *l = s; *l; l = strchr(l, '\n') + 1) {
		char name[128];
		if (l[0] == '#')
			continue;
		size_t n = strcspn(l, "{ ");
		assert_true(n > 0 && n < sizeof(name));
		memcpy(name, l, n);
		name[n] = 0;
		char *suffix;
		if ((suffix = strstr(name, "_bucket")) || (suffix = strstr(name, "_sum")) ||
		    (suffix = strstr(name, "_count")))
			if (strstr(s, "# TYPE baton_handoff_latency_seconds histogram") &&
			    strncmp(name, "baton_handoff_latency_seconds", 29) == 0)
				*suffix = 0;
		char help[160], type[160];
		snprintf(help, sizeof(help), "# HELP %s ", name);
		snprintf(type, sizeof(type), "# TYPE %s ", name);
		char *h = strstr(s, help), *t = strstr(s, type);
		if (!h || !t || h > l || t > l)
			fail_msg("no HELP/TYPE before %s", name);
		assert_non_null(strchr(l, ' '));
	}
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_not_running, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_targets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
