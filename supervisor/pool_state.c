/* The engine saved into a reexec state and rebuilt from one: see pool_state.h. */
#include "pool_state.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batond.h"
#include "config_keys.h"
#include "dispatch.h"
#include "log.h"
#include "output.h"
#include "pool.h"
#include "state.h"
#include "util.h"

static const char *const counter_names[] = {"accepted", "handed",  "acked",   "redispatched",
					    "dropped",  "lost",    "restarts"};

static uint64_t *counters(struct program *p, int i)
{
	uint64_t *const c[] = {&p->accepted, &p->handed, &p->acked, &p->redispatched,
			       &p->dropped,  &p->lost,   &p->restarts};
	return c[i];
}

#define NCOUNTERS ((int)(sizeof(counter_names) / sizeof(counter_names[0])))

static void save_conn(struct state_out *o, const struct program *p, const struct worker *w,
		      const struct conn *c, int unacked)
{
	state_record(o, "conn", 1);
	state_str(o, "program", p->cfg.name);
	state_i64(o, "worker", w ? w->pid : 0);
	state_u64(o, "unacked", (uint64_t)unacked);
	state_u64(o, "id", c->id);
	state_fd(o, "fd", c->fd);
	state_u64(o, "accepted_ms", c->accepted_ms);
	state_u64(o, "accepted_us", c->accepted_us);
	state_u64(o, "handed_ms", c->handed_ms);
	state_str(o, "listener", c->listener);
	state_str(o, "peer", c->peer);
}

static void save_worker(struct state_out *o, const struct worker *w)
{
	state_record(o, "worker", 1);
	state_str(o, "program", w->prog->cfg.name);
	state_i64(o, "slot", w->slot);
	state_i64(o, "generation", w->generation);
	state_i64(o, "pid", w->pid);
	state_fd(o, "chan", w->chan);
	state_str(o, "state", pool_state_name(w->state));
	state_u64(o, "broken", (uint64_t)w->broken);
	state_u64(o, "retiring", (uint64_t)w->retiring);
	state_u64(o, "drain_pending", (uint64_t)w->drain_pending);
	state_u64(o, "replacement", (uint64_t)w->replacement);
	state_str(o, "why", w->why);
	state_u64(o, "capacity", w->capacity);
	state_u64(o, "active", w->active);
	state_u64(o, "started_ms", w->started_ms);
	state_u64(o, "ready_ms", w->ready_ms);
	state_u64(o, "last_msg_ms", w->last_msg_ms);
	state_u64(o, "status_sent", (uint64_t)w->status_sent);
	state_u64(o, "handed", w->handed);
	state_u64(o, "acked", w->acked);
	if (evtimer_pending(w->ev_timer, NULL))
		state_u64(o, "timer_due_ms", w->timer_due_ms);
	output_save(w->out[0], o, "stdout");
	output_save(w->out[1], o, "stderr");
}

void pool_state_save(struct state_out *o)
{
	struct program *p;
	struct worker *w;
	struct conn *c;
	char key[32];

	state_record(o, "engine", 1);
	state_u64(o, "next_id", dispatch_next_id());
	TAILQ_FOREACH(p, &batond.programs, link) {
		state_record(o, "program", 1);
		state_str(o, "name", p->cfg.name);
		config_save_section(o, S_PROGRAM, &p->cfg);
		state_i64(o, "generation", p->generation);
		state_u64(o, "retired", (uint64_t)p->retired);
		state_i64(o, "nslots", p->nslots);
		for (int i = 0; i < NCOUNTERS; i++)
			state_u64(o, counter_names[i], *counters(p, i));
		for (int i = 0; i <= DISPATCH_LAT_BUCKETS; i++) {
			snprintf(key, sizeof(key), "lat.%d", i);
			state_u64(o, key, p->lat_bucket[i]);
		}
		state_u64(o, "lat_count", p->lat_count);
		state_u64(o, "lat_sum_us", p->lat_sum_us);
		for (int i = 0; i < UPGRADE_COUNT; i++) {
			snprintf(key, sizeof(key), "upgrades.%s", pool_upgrade_result_name(i));
			state_u64(o, key, p->upgrades[i]);
		}
		for (int i = 0; i < p->nslots; i++) {
			const struct slot *s = p->slots[i];
			state_record(o, "slot", 1);
			state_str(o, "program", p->cfg.name);
			state_i64(o, "index", s->index);
			state_str(o, "state", pool_slot_state_name(s->state));
			state_i64(o, "failures", s->failures);
			state_u64(o, "held", (uint64_t)s->held);
			state_u64(o, "removing", (uint64_t)s->removing);
			state_i64(o, "generation", s->generation);
			state_str(o, "last_exit", s->last_exit);
			if (s->ev_backoff && evtimer_pending(s->ev_backoff, NULL))
				state_u64(o, "backoff_due_ms", s->backoff_due_ms);
		}
		TAILQ_FOREACH(w, &p->workers, link) {
			save_worker(o, w);
			TAILQ_FOREACH(c, &w->unacked, link)
				save_conn(o, p, w, c, 1);
			TAILQ_FOREACH(c, &w->outbox, link)
				save_conn(o, p, w, c, 0);
		}
		TAILQ_FOREACH(c, &p->queue, link)
			save_conn(o, p, NULL, c, 0);
	}
}

/* ---- restoring ---- */

static struct program *find_program(const struct state_rec *r, char *err, size_t errlen)
{
	char name[CFG_NAME_MAX];
	struct program *p;
	if (state_get_str(r, "program", name, sizeof(name), err, errlen) < 0)
		return NULL;
	TAILQ_FOREACH(p, &batond.programs, link)
		if (strcmp(p->cfg.name, name) == 0)
			return p;
	state_fail(err, errlen, "%s: no program '%s' before it", r->type, name);
	return NULL;
}

static int get_flag(const struct state_rec *r, const char *key, int *v, char *err, size_t errlen)
{
	long long x = 0;
	if (state_get(r, key) && state_get_int(r, key, 0, 1, &x, err, errlen) < 0)
		return -1;
	*v = (int)x;
	return 0;
}

static int restore_program(const struct state_rec *r, char *err, size_t errlen)
{
	struct cfg_program cfg;
	long long gen;
	char key[32];

	memset(&cfg, 0, sizeof(cfg));
	if (state_get_str(r, "name", cfg.name, sizeof(cfg.name), err, errlen) < 0 ||
	    config_restore_section(r, S_PROGRAM, &cfg, err, errlen) < 0 ||
	    state_get_int(r, "generation", 1, INT_MAX, &gen, err, errlen) < 0)
		goto bad;
	if (!cfg.argv) {
		state_fail(err, errlen, "program %s: no command", cfg.name);
		goto bad;
	}
	long long workers = cfg.workers;
	cfg.workers = 0; /* the slots come from their own records */
	struct program *p = pool_program_new(&cfg);
	if (!p) {
		state_fail(err, errlen, "out of memory");
		goto bad;
	}
	p->cfg.workers = workers;
	TAILQ_INSERT_TAIL(&batond.programs, p, link);
	p->generation = (int)gen;
	if (get_flag(r, "retired", &p->retired, err, errlen) < 0)
		return -1;
	for (int i = 0; i < NCOUNTERS; i++)
		if (state_opt_u64(r, counter_names[i], counters(p, i), err, errlen) < 0)
			return -1;
	for (int i = 0; i <= DISPATCH_LAT_BUCKETS; i++) {
		snprintf(key, sizeof(key), "lat.%d", i);
		if (state_opt_u64(r, key, &p->lat_bucket[i], err, errlen) < 0)
			return -1;
	}
	if (state_opt_u64(r, "lat_count", &p->lat_count, err, errlen) < 0 ||
	    state_opt_u64(r, "lat_sum_us", &p->lat_sum_us, err, errlen) < 0)
		return -1;
	for (int i = 0; i < UPGRADE_COUNT; i++) {
		snprintf(key, sizeof(key), "upgrades.%s", pool_upgrade_result_name(i));
		if (state_opt_u64(r, key, &p->upgrades[i], err, errlen) < 0)
			return -1;
	}
	p->nslots = 0; /* the slot records follow */
	return 0;
bad:
	config_free_strv(cfg.argv);
	config_free_strv(cfg.env);
	return -1;
}

static int parse_name(const char *v, const char *(*name)(int), int n)
{
	for (int i = 0; v && i < n; i++)
		if (strcmp(v, name(i)) == 0)
			return i;
	return -1;
}

static const char *slot_name(int i) { return pool_slot_state_name((enum slot_state)i); }
static const char *worker_name(int i) { return pool_state_name((enum worker_state)i); }

static int restore_slot(const struct state_rec *r, char *err, size_t errlen)
{
	struct program *p = find_program(r, err, errlen);
	long long index, failures, gen;
	uint64_t due = 0;
	if (!p || state_get_int(r, "index", 0, 1023, &index, err, errlen) < 0 ||
	    state_get_int(r, "failures", 0, INT_MAX, &failures, err, errlen) < 0 ||
	    state_get_int(r, "generation", 1, INT_MAX, &gen, err, errlen) < 0 ||
	    state_opt_u64(r, "backoff_due_ms", &due, err, errlen) < 0)
		return -1;
	if (index != p->nslots)
		return state_fail(err, errlen, "slot %s:%lld out of order", p->cfg.name, index);
	struct slot **slots = realloc(p->slots, (size_t)(index + 1) * sizeof(*slots));
	if (!slots)
		return state_fail(err, errlen, "out of memory");
	p->slots = slots;
	int st = parse_name(state_get(r, "state"), slot_name, SLOT_COUNT);
	if (st < 0)
		return state_fail(err, errlen, "slot %s:%lld: bad state", p->cfg.name, index);
	struct slot *s = pool_slot_new(p, (int)index);
	if (!s)
		return state_fail(err, errlen, "out of memory");
	p->slots[p->nslots++] = s;
	s->state = (enum slot_state)st;
	s->failures = (int)failures;
	s->generation = (int)gen;
	if (get_flag(r, "held", &s->held, err, errlen) < 0 ||
	    get_flag(r, "removing", &s->removing, err, errlen) < 0)
		return -1;
	if (state_get(r, "last_exit") &&
	    state_get_str(r, "last_exit", s->last_exit, sizeof(s->last_exit), err, errlen) < 0)
		return -1;
	s->backoff_due_ms = due; /* armed by pool_state_start */
	return 0;
}

static int check_fd(long long fd, int type, const char *what, char *err, size_t errlen)
{
	struct stat sb;
	int t = 0;
	socklen_t len = sizeof(t);
	if (fstat((int)fd, &sb) < 0 || !S_ISSOCK(sb.st_mode) ||
	    getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &t, &len) < 0 || (type && t != type))
		return state_fail(err, errlen, "%s: fd %lld is not the socket the state says", what, fd);
	return 0;
}

static int restore_worker(const struct state_rec *r, char *err, size_t errlen)
{
	struct program *p = find_program(r, err, errlen);
	long long slot, gen, pid, chan, cap, active;
	if (!p || state_get_int(r, "slot", 0, 1023, &slot, err, errlen) < 0 ||
	    state_get_int(r, "generation", 1, INT_MAX, &gen, err, errlen) < 0 ||
	    state_get_int(r, "pid", 1, INT_MAX, &pid, err, errlen) < 0 ||
	    state_get_int(r, "chan", -1, INT_MAX, &chan, err, errlen) < 0 ||
	    state_get_int(r, "capacity", 0, UINT32_MAX, &cap, err, errlen) < 0 ||
	    state_get_int(r, "active", 0, UINT32_MAX, &active, err, errlen) < 0)
		return -1;
	int st = parse_name(state_get(r, "state"), worker_name, WS_COUNT);
	if (st < 0)
		return state_fail(err, errlen, "worker %lld: bad state", pid);
	if (slot >= p->nslots)
		return state_fail(err, errlen, "worker %lld: no slot %s:%lld", pid, p->cfg.name, slot);
	if (pool_find_pid((pid_t)pid))
		return state_fail(err, errlen, "worker %lld twice", pid);
	if (chan >= 0 && check_fd(chan, SOCK_SEQPACKET, "worker channel", err, errlen) < 0)
		return -1;
	struct worker *w = pool_worker_new(p, (int)slot, (int)gen, (int)chan);
	if (!w)
		return state_fail(err, errlen, "out of memory");
	w->pid = (pid_t)pid;
	TAILQ_INSERT_TAIL(&p->workers, w, link);
	w->state = (enum worker_state)st;
	w->capacity = (uint32_t)cap;
	w->active = (uint32_t)active;
	const struct cfg_program *cfg = pool_cfg_for(p, w->generation);
	if (get_flag(r, "broken", &w->broken, err, errlen) < 0 ||
	    get_flag(r, "retiring", &w->retiring, err, errlen) < 0 ||
	    get_flag(r, "drain_pending", &w->drain_pending, err, errlen) < 0 ||
	    get_flag(r, "replacement", &w->replacement, err, errlen) < 0 ||
	    get_flag(r, "status_sent", &w->status_sent, err, errlen) < 0 ||
	    state_opt_u64(r, "started_ms", &w->started_ms, err, errlen) < 0 ||
	    state_opt_u64(r, "ready_ms", &w->ready_ms, err, errlen) < 0 ||
	    state_opt_u64(r, "last_msg_ms", &w->last_msg_ms, err, errlen) < 0 ||
	    state_opt_u64(r, "handed", &w->handed, err, errlen) < 0 ||
	    state_opt_u64(r, "acked", &w->acked, err, errlen) < 0 ||
	    state_opt_u64(r, "timer_due_ms", &w->timer_due_ms, err, errlen) < 0 ||
	    output_adopt(&w->out[0], r, "stdout", p->cfg.name, w->slot, 1, cfg->stdout_to, err,
			 errlen) < 0 ||
	    output_adopt(&w->out[1], r, "stderr", p->cfg.name, w->slot, 2, cfg->stderr_to, err,
			 errlen) < 0)
		return -1;
	if (state_get(r, "why") && state_get_str(r, "why", w->why, sizeof(w->why), err, errlen) < 0)
		return -1;
	return 0;
}

static int restore_conn(const struct state_rec *r, char *err, size_t errlen)
{
	struct program *p = find_program(r, err, errlen);
	long long pid, fd;
	int unacked;
	uint64_t id, acc_ms = 0, acc_us = 0, handed = 0;
	char listener[PROTO_LISTENER_MAX] = "", peer[PROTO_PEER_MAX] = "";
	struct worker *w = NULL;

	if (!p || state_get_int(r, "worker", 0, INT_MAX, &pid, err, errlen) < 0 ||
	    get_flag(r, "unacked", &unacked, err, errlen) < 0 ||
	    state_get_u64(r, "id", &id, err, errlen) < 0 ||
	    state_get_int(r, "fd", 0, INT_MAX, &fd, err, errlen) < 0 ||
	    state_opt_u64(r, "accepted_ms", &acc_ms, err, errlen) < 0 ||
	    state_opt_u64(r, "accepted_us", &acc_us, err, errlen) < 0 ||
	    state_opt_u64(r, "handed_ms", &handed, err, errlen) < 0 ||
	    state_get_str(r, "listener", listener, sizeof(listener), err, errlen) < 0 ||
	    state_get_str(r, "peer", peer, sizeof(peer), err, errlen) < 0)
		return -1;
	if (pid && (!(w = pool_find_pid((pid_t)pid)) || w->prog != p))
		return state_fail(err, errlen, "conn %llu: no worker %lld of %s before it",
			    (unsigned long long)id, pid, p->cfg.name);
	if (id >= dispatch_next_id())
		return state_fail(err, errlen, "conn %llu: id not below next_id", (unsigned long long)id);
	if (check_fd(fd, SOCK_STREAM, "connection", err, errlen) < 0)
		return -1;
	struct conn *c = dispatch_conn_new((int)fd, listener, peer);
	if (!c)
		return state_fail(err, errlen, "out of memory");
	dispatch_set_next_id(dispatch_next_id() - 1); /* conn_new took one */
	c->id = id;
	c->accepted_ms = acc_ms;
	c->accepted_us = acc_us;
	c->handed_ms = handed;
	if (!w) {
		TAILQ_INSERT_TAIL(&p->queue, c, link);
		p->nqueued++;
	} else if (unacked) {
		TAILQ_INSERT_TAIL(&w->unacked, c, link);
		w->inflight++;
	} else {
		TAILQ_INSERT_TAIL(&w->outbox, c, link);
		w->queued++;
	}
	return 0;
}

int pool_state_restore(const struct state_rec *r, char *err, size_t errlen)
{
	if (strcmp(r->type, "engine") == 0) {
		uint64_t id;
		if (state_get_u64(r, "next_id", &id, err, errlen) < 0)
			return -1;
		if (id == 0)
			return state_fail(err, errlen, "engine: next_id 0");
		dispatch_set_next_id(id);
		return 1;
	}
	if (strcmp(r->type, "program") == 0)
		return restore_program(r, err, errlen) < 0 ? -1 : 1;
	if (strcmp(r->type, "slot") == 0)
		return restore_slot(r, err, errlen) < 0 ? -1 : 1;
	if (strcmp(r->type, "worker") == 0)
		return restore_worker(r, err, errlen) < 0 ? -1 : 1;
	if (strcmp(r->type, "conn") == 0)
		return restore_conn(r, err, errlen) < 0 ? -1 : 1;
	return 0;
}

void pool_state_start(void)
{
	struct program *p;
	struct worker *w;
	TAILQ_FOREACH(p, &batond.programs, link) {
		for (int i = 0; i < p->nslots; i++)
			if (p->slots[i]->state == SLOT_BACKOFF)
				pool_slot_backoff_at(p->slots[i], p->slots[i]->backoff_due_ms);
		TAILQ_FOREACH(w, &p->workers, link) {
			output_started(w->out[0], w->pid);
			output_started(w->out[1], w->pid);
			if (w->timer_due_ms)
				pool_worker_timer_at(w, w->timer_due_ms);
			if (w->broken || w->chan < 0)
				continue;
			event_add(w->ev_read, NULL);
			dispatch_restored(w);
			if (w->drain_pending)
				pool_send_drain(w);
		}
		dispatch_arm_queue_timer(p);
	}
}
