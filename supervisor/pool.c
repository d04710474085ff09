#include "pool.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "batond.h"
#include "closer.h"
#include "fdpass.h"
#include "log.h"
#include "output.h"
#include "spawn.h"
#include "util.h"

static void spawn(struct slot *s);
static void spawn_gen(struct slot *s, int generation);

struct pool_hooks pool_hooks;

/* Tell whoever watches the pool (operations, systemd) that it changed. */
static void pool_changed(void)
{
	if (pool_hooks.changed)
		pool_hooks.changed();
}

const char *pool_state_name(enum worker_state s)
{
	static const char *const names[WS_COUNT] = {
		[WS_STARTING] = "STARTING", [WS_RUNNING] = "RUNNING",
		[WS_DRAINING] = "DRAINING", [WS_STOPPING] = "STOPPING",
	};
	return names[s];
}

const char *pool_slot_state_name(enum slot_state s)
{
	static const char *const names[SLOT_COUNT] = {
		[SLOT_UP] = "RUNNING",     [SLOT_BACKOFF] = "BACKOFF", [SLOT_FATAL] = "FATAL",
		[SLOT_EXITED] = "EXITED", [SLOT_STOPPED] = "STOPPED",
	};
	return names[s];
}

const char *pool_upgrade_result_name(enum upgrade_result r)
{
	static const char *const names[UPGRADE_COUNT] = {
		[UPGRADE_OK] = "ok", [UPGRADE_FAILED] = "failed", [UPGRADE_ABORTED] = "aborted",
	};
	return names[r];
}

struct slot *pool_slot_new(struct program *p, int index)
{
	struct slot *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->prog = p;
	s->index = index;
	s->state = SLOT_STOPPED;
	s->generation = p->generation ? p->generation : 1;
	return s;
}

static void slot_free(struct slot *s)
{
	if (s->ev_backoff)
		event_free(s->ev_backoff);
	free(s);
}

struct program *pool_program_new(struct cfg_program *cfg)
{
	struct program *p = calloc(1, sizeof(*p));
	int n = (int)cfg->workers;

	if (!p)
		return NULL;
	p->slots = calloc(n ? n : 1, sizeof(*p->slots));
	for (int i = 0; p->slots && i < n; i++)
		if (!(p->slots[i] = pool_slot_new(p, i)))
			goto nomem;
	if (!p->slots)
		goto nomem;
	p->nslots = n;
	p->cfg = *cfg;
	cfg->argv = NULL; /* now ours */
	cfg->env = NULL;
	TAILQ_INIT(&p->workers);
	TAILQ_INIT(&p->queue);
	p->generation = 1;
	return p;
nomem:
	for (int i = 0; p->slots && i < n; i++)
		free(p->slots[i]);
	free(p->slots);
	free(p);
	return NULL;
}

const struct cfg_program *pool_cfg_for(const struct program *p, int generation)
{
	if (p->old_cfg && generation == p->old_cfg_generation)
		return p->old_cfg;
	return &p->cfg;
}

void pool_set_cfg(struct program *p, struct cfg_program *cfg)
{
	pool_forget_old_cfg(p);
	struct cfg_program *old = malloc(sizeof(*old));
	if (old) {
		*old = p->cfg; /* keeps its argv and env */
		p->old_cfg = old;
		p->old_cfg_generation = p->generation;
	} else {
		config_free_strv(p->cfg.argv);
		config_free_strv(p->cfg.env);
	}
	p->cfg = *cfg;
	cfg->argv = NULL; /* now ours */
	cfg->env = NULL;
}

void pool_revert_cfg(struct program *p)
{
	if (!p->old_cfg)
		return;
	config_free_strv(p->cfg.argv);
	config_free_strv(p->cfg.env);
	p->cfg = *p->old_cfg;
	free(p->old_cfg);
	p->old_cfg = NULL;
}

void pool_forget_old_cfg(struct program *p)
{
	if (!p->old_cfg)
		return;
	config_free_strv(p->old_cfg->argv);
	config_free_strv(p->old_cfg->env);
	free(p->old_cfg);
	p->old_cfg = NULL;
}

void pool_program_retire(struct program *p)
{
	p->retired = 1;
	log_info("removing program program=%s workers=%d", p->cfg.name, pool_nworkers(p));
	for (int i = 0; i < p->nslots; i++) {
		p->slots[i]->removing = 1;
		pool_slot_hold(p->slots[i]);
	}
	pool_program_reap(p);
}

void pool_program_reap(struct program *p)
{
	if (!p->retired || !TAILQ_EMPTY(&p->workers))
		return;
	TAILQ_REMOVE(&batond.programs, p, link);
	pool_log_totals(p);
	log_info("program removed program=%s", p->cfg.name);
	pool_program_free(p);
}

void pool_log_totals(const struct program *p)
{
	log_info("program totals program=%s accepted=%llu handed=%llu acked=%llu redispatched=%llu dropped=%llu lost_with_worker=%llu restarts=%llu",
		 p->cfg.name, (unsigned long long)p->accepted,
		 (unsigned long long)p->handed, (unsigned long long)p->acked,
		 (unsigned long long)p->redispatched, (unsigned long long)p->dropped,
		 (unsigned long long)p->lost, (unsigned long long)p->restarts);
}

void pool_program_free(struct program *p)
{
	pool_forget_old_cfg(p);
	for (int i = 0; i < p->nslots; i++)
		slot_free(p->slots[i]);
	dispatch_program_end(p);
	config_free_strv(p->cfg.argv);
	config_free_strv(p->cfg.env);
	free(p->listeners);
	free(p->slots);
	free(p);
}

struct program *pool_find(const char *name)
{
	struct program *p;
	TAILQ_FOREACH(p, &batond.programs, link)
		if (!p->retired && strcmp(p->cfg.name, name) == 0)
			return p;
	return NULL;
}

int pool_nworkers(const struct program *p)
{
	int n = 0;
	const struct worker *w;
	TAILQ_FOREACH(w, &p->workers, link)
		n++;
	return n;
}

void pool_start(struct program *p)
{
	for (int i = 0; i < p->nslots; i++) {
		p->slots[i]->failures = 0;
		spawn(p->slots[i]);
	}
}

void pool_worker_timer_at(struct worker *w, uint64_t due_ms)
{
	uint64_t now = now_ms(), ms = due_ms > now ? due_ms - now : 0;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	w->timer_due_ms = due_ms;
	evtimer_add(w->ev_timer, &tv);
}

static void arm_timer(struct worker *w, uint64_t ms)
{
	pool_worker_timer_at(w, now_ms() + ms);
}

static void signal_worker(struct worker *w, int sig)
{
	/* The worker leads its own process group: signal what it started too. */
	if (kill(-w->pid, sig) < 0 && errno == ESRCH)
		kill(w->pid, sig);
}

static int send_simple(struct worker *w, uint16_t type)
{
	uint8_t buf[PROTO_HDR_SIZE];
	struct proto_msg m = {.type = type};
	int len = proto_encode(&m, buf, sizeof(buf));
	if (w->chan < 0 || len < 0)
		return -1;
	return fdpass_send(w->chan, buf, len, NULL, 0);
}

void pool_stop_worker(struct worker *w)
{
	if (w->state == WS_STOPPING)
		return;
	int sig = w->prog->cfg.stop_signal;
	log_info("stopping worker program=%s slot=%d pid=%d signal=%s",
		 w->prog->cfg.name, w->slot, (int)w->pid, config_signal_name(sig));
	w->state = WS_STOPPING;
	w->retiring = 1;
	dispatch_reclaim(w, 0);
	signal_worker(w, sig);
	arm_timer(w, w->prog->cfg.stop_timeout);
}

void pool_send_drain(struct worker *w)
{
	if (!w->drain_pending)
		return;
	if (send_simple(w, PROTO_DRAIN) == 0) {
		w->drain_pending = 0;
	} else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
		dispatch_want_write(w); /* sent when the channel drains */
	} else {
		w->drain_pending = 0;
		pool_stop_worker(w);
	}
}

void pool_drain_worker(struct worker *w)
{
	if (w->state == WS_STARTING) {
		pool_stop_worker(w);
		return;
	}
	if (w->state != WS_RUNNING)
		return;
	w->state = WS_DRAINING;
	w->retiring = 1;
	dispatch_reclaim(w, 0);
	w->drain_pending = 1;
	pool_send_drain(w);
	if (w->state != WS_DRAINING)
		return; /* the channel is broken: it is being stopped */
	log_info("draining worker program=%s slot=%d pid=%d active=%u",
		 w->prog->cfg.name, w->slot, (int)w->pid, w->active);
	arm_timer(w, w->prog->cfg.drain_timeout);
}

void pool_fail_worker(struct worker *w, const char *why)
{
	if (w->broken)
		return;
	log_error("worker failed, killing it program=%s slot=%d pid=%d reason=\"%s\"",
		  w->prog->cfg.name, w->slot, (int)w->pid, why);
	snprintf(w->why, sizeof(w->why), "killed: %s", why);
	w->broken = 1;
	if (w->ev_read)
		event_del(w->ev_read);
	if (w->ev_write)
		event_del(w->ev_write);
	if (w->ev_retry)
		event_del(w->ev_retry);
	if (w->ev_ack)
		event_del(w->ev_ack);
	dispatch_reclaim(w, 0);
	signal_worker(w, SIGKILL);
	/* Unacked conns come back when it is reaped: it may hold their fds. */
	dispatch_kick(w->prog);
}

/* While RUNNING, ev_timer checks that the worker still talks. */
static void heartbeat_check(struct worker *w)
{
	uint64_t limit = pool_cfg_for(w->prog, w->generation)->heartbeat_timeout;
	uint64_t silent = now_ms() - w->last_msg_ms;
	char why[80];

	if (!limit)
		return;
	if (silent >= limit) {
		snprintf(why, sizeof(why), "hung: no heartbeat for %llu ms",
			 (unsigned long long)silent);
		pool_fail_worker(w, why);
		return;
	}
	/* Half the time gone: ask.  A full channel means it is not reading;
	 * the timeout will tell. */
	if (silent >= limit / 2 && !w->status_sent && send_simple(w, PROTO_STATUS) == 0)
		w->status_sent = 1;
	arm_timer(w, limit / 4 > 10 ? limit / 4 : 10);
}

static void worker_timer(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	switch (w->state) {
	case WS_STARTING:
		log_error("worker not ready in time program=%s slot=%d pid=%d ready_timeout=%llums",
			  w->prog->cfg.name, w->slot, (int)w->pid,
			  (unsigned long long)w->prog->cfg.ready_timeout);
		snprintf(w->why, sizeof(w->why), "not ready within ready_timeout (%llu ms)",
			 (unsigned long long)w->prog->cfg.ready_timeout);
		pool_stop_worker(w);
		break;
	case WS_DRAINING:
		log_warn("drain timeout program=%s slot=%d pid=%d active=%u",
			 w->prog->cfg.name, w->slot, (int)w->pid, w->active);
		pool_stop_worker(w);
		break;
	case WS_STOPPING:
		log_warn("stop timeout, sending SIGKILL program=%s slot=%d pid=%d",
			 w->prog->cfg.name, w->slot, (int)w->pid);
		signal_worker(w, SIGKILL);
		break;
	case WS_RUNNING:
		heartbeat_check(w);
		break;
	}
}

void pool_worker_ready(struct worker *w, uint32_t capacity)
{
	struct program *p = w->prog;
	if (w->state != WS_STARTING) {
		if (w->state == WS_RUNNING)
			pool_fail_worker(w, "READY sent twice");
		return; /* draining/stopping: irrelevant */
	}
	w->capacity = capacity && capacity < p->cfg.capacity ? capacity
							      : (uint32_t)p->cfg.capacity;
	w->state = WS_RUNNING;
	w->ready_ms = now_ms();
	evtimer_del(w->ev_timer);
	log_info("worker ready program=%s slot=%d pid=%d generation=%d capacity=%u startup_ms=%llu",
		 p->cfg.name, w->slot, (int)w->pid, w->generation, w->capacity,
		 (unsigned long long)(w->ready_ms - w->started_ms));
	w->replacement = 0; /* it serves the slot now */
	heartbeat_check(w);
	if (batond.shutting_down)
		pool_drain_worker(w);
	dispatch_kick(p);
	pool_changed();
}

/*
 * The worker closed its end, normally because it is exiting.  It takes no
 * more work; if it has not exited after stop_timeout it is killed (it may
 * still hold connections, so those are reclaimed only when it is reaped).
 */
void pool_channel_closed(struct worker *w)
{
	event_del(w->ev_read);
	close(w->chan);
	w->chan = -1;
	if (w->state == WS_STARTING || w->state == WS_RUNNING) {
		log_debug("worker closed its channel program=%s slot=%d pid=%d",
			  w->prog->cfg.name, w->slot, (int)w->pid);
		w->state = WS_STOPPING;
		dispatch_reclaim(w, 0);
		arm_timer(w, w->prog->cfg.stop_timeout);
	}
}

static void backoff_due(evutil_socket_t fd, short what, void *arg)
{
	struct slot *s = arg;
	(void)fd;
	(void)what;
	if (s->state == SLOT_BACKOFF && !batond.shutting_down)
		spawn(s);
}

void pool_slot_backoff_at(struct slot *s, uint64_t due_ms)
{
	uint64_t now = now_ms(), ms = due_ms > now ? due_ms - now : 0;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	if (!s->ev_backoff && !(s->ev_backoff = evtimer_new(batond.base, backoff_due, s)))
		fatal("out of memory");
	s->backoff_due_ms = due_ms;
	evtimer_add(s->ev_backoff, &tv);
}

static void spawn(struct slot *s)
{
	spawn_gen(s, s->generation);
}

struct worker *pool_worker_new(struct program *p, int slot, int generation, int chan)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	if (chan >= 0) { /* -1: a restored worker whose channel had closed */
		fd_set_nonblock(chan);
		closer_guard_channel(chan); /* workers may not send fds: refuse them */
	}
	w->prog = p;
	w->slot = slot;
	w->generation = generation;
	w->chan = chan;
	w->state = WS_STARTING;
	TAILQ_INIT(&w->outbox);
	TAILQ_INIT(&w->unacked);
	w->ev_read = event_new(batond.base, w->chan, EV_READ | EV_PERSIST, dispatch_readable, w);
	w->ev_timer = evtimer_new(batond.base, worker_timer, w);
	if (!w->ev_read || !w->ev_timer)
		fatal("out of memory");
	return w;
}

static void spawn_gen(struct slot *s, int generation)
{
	struct program *p = s->prog;
	struct worker *w = NULL;
	int sv[2] = {-1, -1};

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
	    !(w = pool_worker_new(p, s->index, generation, sv[0]))) {
		if (sv[0] >= 0) {
			close(sv[0]);
			close(sv[1]);
			errno = ENOMEM;
		}
		log_error("cannot create worker program=%s slot=%d error=\"%s\"",
			  p->cfg.name, s->index, strerror(errno));
		goto retry;
	}
	const struct cfg_program *cfg = pool_cfg_for(p, generation);
	int outfd[2];
	w->out[0] = output_new(p->cfg.name, s->index, 1, cfg->stdout_to, &outfd[0]);
	w->out[1] = output_new(p->cfg.name, s->index, 2, cfg->stderr_to, &outfd[1]);

	pid_t pid = spawn_worker(cfg, s->index, w->generation, sv[1], outfd);
	int fork_errno = errno;
	if (pid < 0) {
		errno = fork_errno;
		log_error("fork failed program=%s slot=%d error=\"%s\"", p->cfg.name,
			  s->index, strerror(errno));
		close(sv[0]);
		close(sv[1]);
		event_free(w->ev_read);
		event_free(w->ev_timer);
		output_free(w->out[0]);
		output_free(w->out[1]);
		free(w);
		errno = fork_errno;
		goto retry;
	}
	close(sv[1]);
	output_started(w->out[0], pid);
	output_started(w->out[1], pid);
	w->pid = pid;
	w->started_ms = now_ms();
	TAILQ_INSERT_TAIL(&p->workers, w, link);
	s->state = SLOT_UP;
	event_add(w->ev_read, NULL);
	arm_timer(w, p->cfg.ready_timeout);
	log_info("started worker program=%s slot=%d pid=%d generation=%d",
		 p->cfg.name, s->index, (int)pid, w->generation);
	return;
retry:
	s->state = SLOT_BACKOFF;
	pool_slot_backoff_at(s, now_ms() + 1000);
	snprintf(s->last_exit, sizeof(s->last_exit), "cannot start: %s", strerror(errno));
	pool_changed();
}

/* Free slots at the end of the array that were scaled away and are empty. */
static void compact_slots(struct program *p)
{
	while (p->nslots > 0) {
		struct slot *s = p->slots[p->nslots - 1];
		if (!s->removing || pool_slot_live(s) || pool_slot_has_workers(s))
			break;
		slot_free(s);
		p->slots[--p->nslots] = NULL;
	}
}

/* Decide what a slot does after its worker exited. */
static void after_exit(struct worker *w, int status, const char *how)
{
	struct program *p = w->prog;
	struct slot *s = w->slot < p->nslots ? p->slots[w->slot] : NULL;
	int failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	uint64_t up = now_ms() - w->started_ms;

	if (!s || batond.shutting_down)
		return;
	snprintf(s->last_exit, sizeof(s->last_exit), "%s%s%s", w->why[0] ? w->why : how,
		 w->why[0] ? ", " : "", w->why[0] ? how : "");
	if (w->replacement) {
		/* Never became ready: the worker it was to replace carries on,
		 * unless it is gone too; then the slot restarts as after a crash. */
		log_warn("replacement worker failed program=%s slot=%d pid=%d reason=\"%s\"%s",
			 p->cfg.name, s->index, (int)w->pid, s->last_exit,
			 pool_slot_live(s) ? "" : " replaced=gone");
		if (pool_slot_live(s))
			return;
	}
	if (pool_slot_live(s))
		return; /* its replacement serves the slot */
	if (s->held || s->removing || (w->retiring && !w->broken && w->ready_ms)) {
		/* Drained or stopped on purpose: down until started again. */
		s->state = SLOT_STOPPED;
		return;
	}
	if (p->cfg.restart == RESTART_NEVER ||
	    (p->cfg.restart == RESTART_ON_FAILURE && !failed && !w->broken)) {
		s->state = SLOT_EXITED;
		return;
	}
	if (w->ready_ms && up >= p->cfg.start_window) {
		s->failures = 0;
		p->restarts++;
		spawn(s);
		return;
	}
	s->failures++;
	if (s->failures > p->cfg.start_retries) {
		s->state = SLOT_FATAL;
		log_error("worker slot is FATAL after %d failed starts program=%s slot=%d",
			  s->failures, p->cfg.name, s->index);
		return;
	}
	uint64_t delay = p->cfg.backoff;
	for (int i = 1; i < s->failures && delay < p->cfg.backoff_max; i++)
		delay *= 2;
	if (delay > p->cfg.backoff_max)
		delay = p->cfg.backoff_max;
	log_warn("worker failed to start, retrying program=%s slot=%d failures=%d backoff_ms=%llu",
		 p->cfg.name, s->index, s->failures, (unsigned long long)delay);
	s->state = SLOT_BACKOFF;
	pool_slot_backoff_at(s, now_ms() + delay);
	p->restarts++;
}

static void worker_exited(struct worker *w, int status)
{
	struct program *p = w->prog;
	char how[64];

	enum worker_state was = w->state;

	/* Everything it sent before dying is still queued: read it first,
	 * as a worker that takes no more work. */
	w->state = WS_STOPPING;
	if (!w->broken && w->chan >= 0)
		dispatch_read(w, -1);
	util_describe_status(status, how, sizeof(how));
	log_msg(w->retiring && !w->broken ? LOGL_INFO : LOGL_WARN,
		"worker exited program=%s slot=%d pid=%d %s state=%s unacked=%u active=%u",
		p->cfg.name, w->slot, (int)w->pid, how, pool_state_name(was),
		w->inflight, w->active);
	p->lost += w->active;
	w->state = was;
	dispatch_reclaim(w, 1);
	TAILQ_REMOVE(&p->workers, w, link);
	if (w->chan >= 0)
		close(w->chan);
	event_free(w->ev_read);
	event_free(w->ev_timer);
	if (w->ev_write)
		event_free(w->ev_write);
	if (w->ev_retry)
		event_free(w->ev_retry);
	if (w->ev_ack)
		event_free(w->ev_ack);
	after_exit(w, status, how);
	output_free(w->out[0]);
	output_free(w->out[1]);
	free(w);
	compact_slots(p);
	dispatch_kick(p);
	pool_changed();
	pool_program_reap(p); /* a removed program goes with its last worker */
}

void pool_reap(void)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			break;
		struct program *p;
		struct worker *w = NULL;
		TAILQ_FOREACH(p, &batond.programs, link) {
			TAILQ_FOREACH(w, &p->workers, link)
				if (w->pid == pid)
					break;
			if (w)
				break;
		}
		if (w)
			worker_exited(w, status);
		else if (!pool_hooks.reaped || !pool_hooks.reaped(pid, status))
			log_debug("reaped unknown child pid=%d", (int)pid);
	}
}

void pool_shutdown(struct program *p)
{
	struct worker *w, *next;
	for (int i = 0; i < p->nslots; i++)
		if (p->slots[i]->ev_backoff)
			evtimer_del(p->slots[i]->ev_backoff);
	for (w = TAILQ_FIRST(&p->workers); w; w = next) {
		next = TAILQ_NEXT(w, link);
		pool_drain_worker(w);
	}
}

void pool_stop_all(struct program *p)
{
	struct worker *w;
	TAILQ_FOREACH(w, &p->workers, link)
		pool_stop_worker(w);
}

int pool_slot_has_workers(const struct slot *s)
{
	const struct worker *w;
	TAILQ_FOREACH(w, &s->prog->workers, link)
		if (w->slot == s->index)
			return 1;
	return 0;
}

int pool_slot_live(const struct slot *s)
{
	const struct worker *w;
	int n = 0;
	TAILQ_FOREACH(w, &s->prog->workers, link)
		if (w->slot == s->index && !w->retiring && !w->broken &&
		    (w->state == WS_STARTING || w->state == WS_RUNNING))
			n++;
	return n;
}

struct worker *pool_slot_worker(const struct slot *s)
{
	struct worker *w, *found = NULL;
	TAILQ_FOREACH(w, &s->prog->workers, link)
		if (w->slot == s->index && !w->retiring && !w->broken &&
		    (w->state == WS_STARTING || w->state == WS_RUNNING))
			found = w; /* the list is in start order: keep the newest */
	return found;
}

struct worker *pool_find_pid(pid_t pid)
{
	struct program *p;
	struct worker *w;
	TAILQ_FOREACH(p, &batond.programs, link)
		TAILQ_FOREACH(w, &p->workers, link)
			if (w->pid == pid)
				return w;
	return NULL;
}

int pool_slot_start(struct slot *s)
{
	s->held = 0;
	s->removing = 0;
	if (pool_slot_live(s))
		return 0;
	if (s->ev_backoff)
		evtimer_del(s->ev_backoff);
	s->failures = 0;
	spawn(s);
	return 1;
}

void pool_slot_hold(struct slot *s)
{
	struct worker *w, *next;

	s->held = 1;
	if (s->ev_backoff)
		evtimer_del(s->ev_backoff);
	for (w = TAILQ_FIRST(&s->prog->workers); w; w = next) {
		next = TAILQ_NEXT(w, link);
		if (w->slot == s->index)
			pool_drain_worker(w);
	}
	if (!pool_slot_has_workers(s))
		s->state = SLOT_STOPPED;
}

struct worker *pool_slot_replace(struct slot *s, int generation)
{
	struct program *p = s->prog;
	struct worker *w;

	if (!pool_slot_live(s)) {
		s->generation = generation;
		pool_slot_start(s);
		return pool_slot_worker(s);
	}
	spawn_gen(s, generation);
	w = TAILQ_LAST(&p->workers, worker_list);
	if (!w || w->slot != s->index || w->state != WS_STARTING)
		return NULL; /* could not fork: the slot retries as usual */
	w->replacement = 1;
	return w;
}

int pool_nslots_active(const struct program *p)
{
	int n = 0;
	for (int i = 0; i < p->nslots; i++)
		n += !p->slots[i]->removing;
	return n;
}

int pool_scale(struct program *p, int n)
{
	if (n > p->nslots) {
		struct slot **v = realloc(p->slots, n * sizeof(*v));
		if (!v)
			return -1;
		p->slots = v;
		for (int i = p->nslots; i < n; i++) {
			if (!(p->slots[i] = pool_slot_new(p, i)))
				return -1;
			p->nslots = i + 1;
			spawn(p->slots[i]);
		}
	}
	for (int i = 0; i < p->nslots; i++) {
		struct slot *s = p->slots[i];
		if (i < n && s->removing)
			pool_slot_start(s); /* scaled back up before it was gone */
		else if (i >= n && !s->removing) {
			s->removing = 1;
			pool_slot_hold(s);
		}
	}
	compact_slots(p);
	return 0;
}
