/*
 * Long operations: start, stop, restart and scale of slots, the rolling
 * upgrade with its rollback, reload, and shutdown.  Each is a state
 * machine re-checked whenever the pool changes (ops_pool_changed, the
 * pool's hook); it reports through a struct reply and never sees who
 * asked.  See ops.h.
 */
#include "ops.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "batond.h"
#include "ctl.h"
#include "dispatch.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "pool.h"
#include "reload.h"
#include "report.h"
#include "util.h"

/* One slot an operation works on, and where it is with it. */
struct op_slot {
	struct program *prog;
	int slot;
	int phase;   /* per kind: 0 not begun, 1 waiting, 2 done */
	pid_t old_pid, new_pid;
};

struct op {
	LIST_ENTRY(op) link;
	enum op_kind kind;
	struct reply reply;    /* zeroed once the client left: the op goes on */
	char what[64];         /* "restart web", for logs */
	struct op_slot *s;
	int n;
	struct program *prog; /* scale, upgrade */
	int target;           /* scale */
	/* upgrade */
	int old_gen, new_gen, batch, cursor;
	int rolling_back, aborted;
	/* reload: the scale and upgrade operations it started */
	struct op *parent;
	int children, children_failed;
	char failure[CTL_LINE_MAX - 64];
	uint64_t started_ms;
};

static LIST_HEAD(, op) ops = LIST_HEAD_INITIALIZER(ops);

static const char *const op_names[] = {"start", "stop", "restart", "scale", "upgrade", "reload"};

/* Where an operation's progress goes: a reload's children report to it. */
static const struct reply *op_reply(const struct op *op)
{
	return op->parent ? &op->parent->reply : &op->reply;
}

static struct slot *op_slot(const struct op_slot *os)
{
	return os->slot < os->prog->nslots ? os->prog->slots[os->slot] : NULL;
}

static int slot_has_workers(const struct slot *s)
{
	struct worker *w;
	TAILQ_FOREACH(w, &s->prog->workers, link)
		if (w->slot == s->index)
			return 1;
	return 0;
}

static struct worker *slot_running(const struct slot *s)
{
	struct worker *w = pool_slot_worker(s);
	return w && w->state == WS_RUNNING ? w : NULL;
}

static void op_free(struct op *op)
{
	struct op *o;
	LIST_FOREACH(o, &ops, link)
		if (o->parent == op)
			o->parent = NULL; /* orphaned children carry on silently */
	if (op->kind == OP_RELOAD)
		notify_reloaded();
	LIST_REMOVE(op, link);
	free(op->s);
	free(op);
}

static void op_end(struct op *op, int code, const char *msg)
{
	uint64_t ms = now_ms() - op->started_ms;
	struct op *parent = op->parent;

	log_msg(code ? LOGL_WARN : LOGL_INFO, "control: %s %s in %llums%s%s",
		op->what, code ? "failed" : "done", (unsigned long long)ms,
		code ? ": " : "", code ? msg : "");
	if (parent) {
		reply_putf(&parent->reply, '>', "%s: %s", op->what, msg);
		parent->children--;
		parent->children_failed += code != 0;
	} else {
		reply_finish(&op->reply, code, "%s", msg);
	}
	op_free(op);
	if (parent && parent->children == 0) {
		if (parent->children_failed)
			op_end(parent, CTL_FAILED, "reload applied, but some changes failed (see above)");
		else
			op_end(parent, CTL_OK, "reloaded");
	}
}

/* Waiting for a slot to have a RUNNING worker: 1 yes, 0 not yet, -1 never. */
static int wait_running(struct op *op, struct op_slot *os, char *why, size_t size)
{
	struct slot *s = op_slot(os);
	struct worker *w;

	if (!s || s->removing) {
		snprintf(why, size, "%s:%d was removed", os->prog->cfg.name, os->slot);
		return -1;
	}
	if ((w = slot_running(s))) {
		if (os->phase < 2)
			reply_putf(op_reply(op), '>', "%s:%d running pid %d", os->prog->cfg.name,
			     os->slot, (int)w->pid);
		os->phase = 2;
		return 1;
	}
	if (s->state == SLOT_FATAL) {
		snprintf(why, size, "%s:%d is FATAL: %s", os->prog->cfg.name, os->slot,
			 s->last_exit);
		return -1;
	}
	if (s->held) {
		snprintf(why, size, "%s:%d was stopped meanwhile", os->prog->cfg.name, os->slot);
		return -1;
	}
	if (s->state == SLOT_EXITED || s->state == SLOT_STOPPED) {
		snprintf(why, size, "%s:%d exited: %s", os->prog->cfg.name, os->slot,
			 s->last_exit);
		return -1;
	}
	if (s->state == SLOT_BACKOFF && os->phase != 3) {
		reply_putf(op_reply(op), '>', "%s:%d failed to start (%s), retrying", os->prog->cfg.name,
		     os->slot, s->last_exit);
		os->phase = 3; /* reported; the next start attempt resets it */
	} else if (s->state == SLOT_UP) {
		os->phase = 1;
	}
	return 0;
}

/* Rolling restart of one slot: 1 done, 0 waiting, -1 failed. */
static int restart_step(struct op *op, struct op_slot *os, char *why, size_t size)
{
	struct slot *s = op_slot(os);
	const char *name = os->prog->cfg.name;
	struct worker *w;

	if (!s || s->removing) {
		snprintf(why, size, "%s:%d was removed", name, os->slot);
		return -1;
	}
	if (os->phase == 0) {
		struct worker *old = pool_slot_worker(s);
		os->old_pid = old ? old->pid : 0;
		w = pool_slot_replace(s, s->generation);
		if (!w) {
			snprintf(why, size, "%s:%d: cannot start a worker: %s", name, os->slot,
				 s->last_exit[0] ? s->last_exit : "fork failed");
			return -1;
		}
		os->new_pid = w->pid;
		os->phase = 1;
		if (os->old_pid)
			reply_putf(op_reply(op), '>', "%s:%d started pid %d to replace pid %d", name,
			     os->slot, (int)w->pid, (int)os->old_pid);
		else
			reply_putf(op_reply(op), '>', "%s:%d started pid %d", name, os->slot, (int)w->pid);
	}
	w = pool_find_pid(os->new_pid);
	if (!w || w->prog != os->prog || w->state == WS_STOPPING || w->broken) {
		struct worker *old = os->old_pid ? pool_find_pid(os->old_pid) : NULL;
		if (old && old->prog == os->prog && !old->retiring && !old->broken)
			snprintf(why, size, "%s:%d: new worker pid %d failed (%s); pid %d keeps serving",
				 name, os->slot, (int)os->new_pid, s->last_exit, (int)os->old_pid);
		else if (os->old_pid)
			snprintf(why, size,
				 "%s:%d: new worker pid %d failed (%s), and pid %d exited meanwhile; "
				 "the slot restarts as after a crash",
				 name, os->slot, (int)os->new_pid, s->last_exit, (int)os->old_pid);
		else
			snprintf(why, size, "%s:%d: new worker pid %d failed (%s)", name, os->slot,
				 (int)os->new_pid, s->last_exit);
		return -1;
	}
	if (w->state != WS_RUNNING)
		return 0;
	struct worker *old = os->old_pid ? pool_find_pid(os->old_pid) : NULL;
	if (old && old->prog == os->prog) {
		reply_putf(op_reply(op), '>', "%s:%d pid %d ready, draining pid %d", name, os->slot,
		     (int)w->pid, (int)old->pid);
		pool_drain_worker(old);
	} else {
		reply_putf(op_reply(op), '>', "%s:%d pid %d ready", name, os->slot, (int)w->pid);
	}
	os->phase = 2;
	return 1;
}

/* Re-check one operation; returns 1 when it ended (and was freed). */
static int upgrade_check(struct op *op);
static void shutdown_check(void);

static int op_check(struct op *op)
{
	char why[CTL_LINE_MAX - 16];
	int pending = 0;

	if (batond.shutting_down) {
		op_end(op, CTL_FAILED, "batond is shutting down");
		return 1;
	}
	if (op->kind == OP_UPGRADE)
		return upgrade_check(op);
	if (op->kind == OP_RELOAD)
		return 0; /* ends with its last child */
	for (int i = 0; i < op->n; i++) {
		struct op_slot *os = &op->s[i];
		struct slot *s = op_slot(os);
		int r = 1;
		if (os->phase == 2)
			continue;
		switch (op->kind) {
		case OP_START:
			r = wait_running(op, os, why, sizeof(why));
			break;
		case OP_STOP:
			if (s && !s->held) {
				snprintf(why, sizeof(why), "%s:%d was started again before it stopped",
					 os->prog->cfg.name, os->slot);
				r = -1;
			} else if (s && slot_has_workers(s)) {
				r = 0;
			} else {
				reply_putf(op_reply(op), '>', "%s:%d stopped", os->prog->cfg.name, os->slot);
				os->phase = 2;
			}
			break;
		case OP_RESTART:
			r = restart_step(op, os, why, sizeof(why));
			if (r == 0) {
				pending = 1;
				i = op->n; /* one slot at a time */
				continue;
			}
			break;
		case OP_UPGRADE:
		case OP_RELOAD:
			break;
		case OP_SCALE:
			if (os->slot < op->target) {
				r = wait_running(op, os, why, sizeof(why));
			} else if (s && !s->removing) {
				snprintf(why, sizeof(why), "%s:%d was kept by a later scale or start",
					 os->prog->cfg.name, os->slot);
				r = -1;
			} else if (s) {
				r = 0; /* removed when its workers are gone */
			} else {
				reply_putf(op_reply(op), '>', "%s:%d removed", os->prog->cfg.name, os->slot);
				os->phase = 2;
			}
			break;
		}
		if (r < 0) {
			op_end(op, CTL_FAILED, why);
			return 1;
		}
		if (r == 0)
			pending = 1;
	}
	if (pending)
		return 0;
	switch (op->kind) {
	case OP_START:
		op_end(op, CTL_OK, op->n == 1 ? "started" : "all started");
		break;
	case OP_STOP:
		op_end(op, CTL_OK, "stopped");
		break;
	case OP_RESTART:
		op_end(op, CTL_OK, "restarted");
		break;
	case OP_SCALE:
		snprintf(why, sizeof(why), "%s scaled to %d", op->prog->cfg.name, op->target);
		op_end(op, CTL_OK, why);
		break;
	case OP_UPGRADE:
	case OP_RELOAD:
		break;
	}
	return 1;
}

void ops_pool_changed(void)
{
	static int busy, again;
	struct op *op;

	if (busy) {
		again = 1; /* an op's action changed the pool: loop once more */
		return;
	}
	busy = 1;
	do {
		again = 0;
		/* An op that ends may end its parent too: start over then. */
		for (op = LIST_FIRST(&ops); op;)
			op = op_check(op) ? LIST_FIRST(&ops) : LIST_NEXT(op, link);
	} while (again);
	busy = 0;
	notify_pool_changed();
	shutdown_check();
}

static struct op *op_new_for(const struct reply *r, struct op *parent, enum op_kind kind,
			     const char *name)
{
	struct op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->kind = kind;
	if (r)
		op->reply = *r;
	op->started_ms = now_ms();
	snprintf(op->what, sizeof(op->what), "%s %s", op_names[kind], name);
	if (parent) {
		op->parent = parent;
		parent->children++;
	}
	LIST_INSERT_HEAD(&ops, op, link);
	return op;
}

static struct op *op_new(const struct reply *r, enum op_kind kind, const char *name)
{
	return op_new_for(r, NULL, kind, name);
}

static int op_add(struct op *op, struct program *p, int slot)
{
	struct op_slot *v = realloc(op->s, (op->n + 1) * sizeof(*v));
	if (!v)
		return -1;
	op->s = v;
	op->s[op->n++] = (struct op_slot){.prog = p, .slot = slot};
	return 0;
}

/* Expand targets into the op's slots; -1 on ENOMEM. */
static int op_add_targets(struct op *op, const struct target *t, int n)
{
	for (int i = 0; i < n; i++) {
		struct program *p = t[i].prog;
		for (int k = 0; k < p->nslots; k++)
			if ((t[i].slot < 0 && !p->slots[k]->removing) || t[i].slot == k)
				if (op_add(op, p, k) < 0)
					return -1;
	}
	return 0;
}


/*
 * Rolling upgrade.  Slots go in batches of upgrade_batch: start a worker
 * of the new generation next to each old one, wait until all of the batch
 * are ready, then drain the old ones and go on.  If a new worker fails
 * (exits, or is not ready within ready_timeout) or --abort is asked, roll
 * back: new workers still starting are stopped, and every slot already
 * switched gets a worker of the old generation again (the new one is
 * drained once that is ready).  Phases of an op_slot: 0 old serving,
 * 1 new starting, 2 switched to new, 4 old-generation worker starting
 * again, 5 back on old.
 */
static void upgrade_fail(struct op *op, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void upgrade_fail(struct op *op, const char *fmt, ...)
{
	va_list ap;
	if (op->rolling_back)
		return;
	va_start(ap, fmt);
	vsnprintf(op->failure, sizeof(op->failure), fmt, ap);
	va_end(ap);
	op->rolling_back = 1;
	reply_putf(op_reply(op), '>', "%s; rolling back to generation %d", op->failure, op->old_gen);
	log_warn("upgrade failed program=%s generation=%d reason=\"%s\"; rolling back",
		 op->prog->cfg.name, op->new_gen, op->failure);
	for (int i = 0; i < op->n; i++) {
		struct op_slot *os = &op->s[i];
		struct worker *w;
		if (os->phase == 1 && (w = pool_find_pid(os->new_pid)) && w->prog == op->prog) {
			w->replacement = 1; /* its exit must not restart the slot */
			pool_stop_worker(w);
		}
		if (os->phase == 1)
			os->phase = 0;
	}
}

static int new_gen_left(const struct op *op)
{
	struct worker *w;
	int n = 0;
	TAILQ_FOREACH(w, &op->prog->workers, link)
		n += w->generation == op->new_gen;
	return n;
}

static int upgrade_rollback(struct op *op)
{
	char why[CTL_LINE_MAX - 16];
	int pending = 0;

	for (int i = 0; i < op->n; i++) {
		struct op_slot *os = &op->s[i];
		struct slot *s = op_slot(os);
		struct worker *w;
		if (!s || (os->phase != 2 && os->phase != 4))
			continue;
		if (os->phase == 2) {
			struct worker *cur = pool_slot_worker(s);
			os->old_pid = cur ? cur->pid : 0;
			w = pool_slot_replace(s, op->old_gen);
			if (!w) {
				snprintf(why, sizeof(why), "%s; rollback failed too: cannot start %s:%d",
					 op->failure, op->prog->cfg.name, os->slot);
				op->prog->upgrades[UPGRADE_FAILED]++;
				op_end(op, CTL_FAILED, why);
				return 1;
			}
			os->new_pid = w->pid;
			os->phase = 4;
			reply_putf(op_reply(op), '>', "%s:%d started pid %d (generation %d) to replace pid %d",
			     op->prog->cfg.name, os->slot, (int)w->pid, op->old_gen, (int)os->old_pid);
		}
		w = pool_find_pid(os->new_pid);
		if (!w || w->prog != op->prog || w->state == WS_STOPPING || w->broken) {
			snprintf(why, sizeof(why), "%s; rollback failed too: %s:%d: %s", op->failure,
				 op->prog->cfg.name, os->slot, s->last_exit);
			op->prog->upgrades[UPGRADE_FAILED]++;
			op_end(op, CTL_FAILED, why);
			return 1;
		}
		if (w->state != WS_RUNNING) {
			pending = 1;
			continue;
		}
		struct worker *newer = pool_find_pid(os->old_pid);
		if (newer && newer->prog == op->prog)
			pool_drain_worker(newer);
		s->generation = op->old_gen;
		os->phase = 5;
		reply_putf(op_reply(op), '>', "%s:%d back on generation %d, pid %d", op->prog->cfg.name,
		     os->slot, op->old_gen, (int)w->pid);
	}
	if (pending || new_gen_left(op))
		return 0; /* wait until no worker of the new generation is left */
	op->prog->upgrades[op->aborted ? UPGRADE_ABORTED : UPGRADE_FAILED]++;
	if (op->prog->old_cfg && op->prog->old_cfg_generation == op->old_gen) {
		pool_revert_cfg(op->prog);
		log_warn("program=%s runs its previous configuration again; the file's is not applied",
			 op->prog->cfg.name);
	}
	snprintf(why, sizeof(why), "upgrade of %s %s: %s; generation %d serves at full count",
		 op->prog->cfg.name, op->aborted ? "aborted" : "failed", op->failure, op->old_gen);
	op_end(op, CTL_FAILED, why);
	return 1;
}

static int upgrade_check(struct op *op)
{
	struct program *p = op->prog;

	if (op->rolling_back)
		return upgrade_rollback(op);
	/* A new worker that already took over its slot and then died fails
	 * the upgrade as well: the release is broken under traffic. */
	for (int i = 0; i < op->cursor; i++) {
		struct op_slot *os = &op->s[i];
		struct slot *s = op_slot(os);
		struct worker *w = pool_find_pid(os->new_pid);
		if (os->phase == 2 && (!w || w->prog != p || w->broken || w->state == WS_STOPPING)) {
			upgrade_fail(op, "%s:%d: new worker pid %d exited after taking over: %s",
				     p->cfg.name, os->slot, (int)os->new_pid,
				     s ? s->last_exit : "slot removed");
			return upgrade_rollback(op);
		}
	}
	while (op->cursor < op->n) {
		int end = op->cursor + op->batch, waiting = 0;
		if (end > op->n)
			end = op->n;
		for (int i = op->cursor; i < end; i++) {
			struct op_slot *os = &op->s[i];
			struct slot *s = op_slot(os);
			struct worker *w;
			if (!s || s->removing) {
				upgrade_fail(op, "%s:%d was removed during the upgrade", p->cfg.name, os->slot);
				return upgrade_rollback(op);
			}
			if (os->phase == 0) {
				struct worker *old = pool_slot_worker(s);
				os->old_pid = old ? old->pid : 0;
				w = pool_slot_replace(s, op->new_gen);
				if (!w) {
					upgrade_fail(op, "%s:%d: cannot start a worker", p->cfg.name, os->slot);
					return upgrade_rollback(op);
				}
				os->new_pid = w->pid;
				os->phase = 1;
				reply_putf(op_reply(op), '>', "%s:%d started pid %d (generation %d)%s", p->cfg.name,
				     os->slot, (int)w->pid, op->new_gen, old ? "" : ", slot had no worker");
			}
			w = pool_find_pid(os->new_pid);
			if (!w || w->prog != p || w->state == WS_STOPPING || w->broken) {
				upgrade_fail(op, "%s:%d: new worker pid %d failed: %s", p->cfg.name,
					     os->slot, (int)os->new_pid, s->last_exit);
				return upgrade_rollback(op);
			}
			if (w->state != WS_RUNNING)
				waiting = 1;
		}
		if (waiting)
			return 0;
		/* The whole batch is ready: now the old ones may go. */
		for (int i = op->cursor; i < end; i++) {
			struct op_slot *os = &op->s[i];
			struct worker *old = os->old_pid ? pool_find_pid(os->old_pid) : NULL;
			struct slot *s = op_slot(os);
			s->generation = op->new_gen;
			os->phase = 2;
			if (old && old->prog == p) {
				pool_drain_worker(old);
				reply_putf(op_reply(op), '>', "%s:%d pid %d ready, draining pid %d", p->cfg.name,
				     os->slot, (int)os->new_pid, (int)old->pid);
			} else {
				reply_putf(op_reply(op), '>', "%s:%d pid %d ready", p->cfg.name, os->slot,
				     (int)os->new_pid);
			}
		}
		op->cursor = end;
	}
	p->generation = op->new_gen;
	p->upgrades[UPGRADE_OK]++;
	pool_forget_old_cfg(p); /* the previous generation is gone */
	char msg[128];
	snprintf(msg, sizeof(msg), "%s upgraded to generation %d", p->cfg.name, op->new_gen);
	op_end(op, CTL_OK, msg);
	return 1;
}

static struct op *upgrade_of(const struct program *p)
{
	struct op *op;
	LIST_FOREACH(op, &ops, link)
		if (op->kind == OP_UPGRADE && op->prog == p)
			return op;
	return NULL;
}

/* Is p busy with an operation that must not be mixed with another? */
static struct op *busy_with(const struct program *p)
{
	struct op *op;
	LIST_FOREACH(op, &ops, link) {
		if (op->prog == p && (op->kind == OP_UPGRADE || op->kind == OP_SCALE))
			return op;
		if (op->kind == OP_RESTART)
			for (int i = 0; i < op->n; i++)
				if (op->s[i].prog == p)
					return op;
	}
	return NULL;
}

/* Start an upgrade of p; r may be NULL (SIGUSR2).  0, or -1 with err. */
static int upgrade_start(const struct reply *r, struct op *parent, struct program *p, char *err,
			 size_t errlen)
{
	struct op *op, *busy = busy_with(p);

	if (busy) {
		snprintf(err, errlen, "%s is busy: %s is in progress%s", p->cfg.name, busy->what,
			 busy->kind == OP_UPGRADE ? " (batonctl upgrade --abort to roll it back)" : "");
		return -1;
	}
	op = op_new_for(r, parent, OP_UPGRADE, p->cfg.name);
	if (!op) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	op->prog = p;
	op->old_gen = p->generation;
	op->new_gen = p->generation + 1;
	op->batch = (int)p->cfg.upgrade_batch > 0 ? (int)p->cfg.upgrade_batch : 1;
	for (int i = 0; i < p->nslots; i++)
		if (!p->slots[i]->removing && op_add(op, p, i) < 0) {
			if (parent)
				parent->children--;
			op_free(op);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	if (op->n == 0) {
		if (parent)
			parent->children--;
		op_free(op);
		snprintf(err, errlen, "%s has no workers to upgrade", p->cfg.name);
		return -1;
	}
	log_info("upgrade started program=%s from_generation=%d to_generation=%d batch=%d uid=%d",
		 p->cfg.name, op->old_gen, op->new_gen, op->batch, reply_uid(r));
	reply_putf(op_reply(op), '>', "%s: generation %d -> %d, %d worker%s, %d at a time", p->cfg.name,
	     op->old_gen, op->new_gen, op->n, op->n == 1 ? "" : "s", op->batch);
	ops_pool_changed();
	return 0;
}

void ops_upgrade_all(void)
{
	struct program *p;
	char err[256];
	TAILQ_FOREACH(p, &batond.programs, link)
		if (upgrade_start(NULL, NULL, p, err, sizeof(err)) < 0)
			log_warn("SIGUSR2: not upgrading program=%s reason=\"%s\"", p->cfg.name, err);
}

/* ---- reload ---- */

static int scale_start(const struct reply *r, struct op *parent, struct program *p, int n,
		       char *err, size_t errlen);

static void reload_upgrade(struct program *p, void *arg)
{
	char err[256];
	if (upgrade_start(NULL, arg, p, err, sizeof(err)) < 0) {
		struct op *parent = arg;
		log_warn("reload: cannot upgrade program=%s reason=\"%s\"", p->cfg.name, err);
		if (parent) {
			reply_putf(&parent->reply, '>', "upgrade %s: %s", p->cfg.name, err);
			parent->children_failed++;
		}
	}
}

static void reload_scale(struct program *p, int n, void *arg)
{
	char err[256];
	if (scale_start(NULL, arg, p, n, err, sizeof(err)) < 0) {
		struct op *parent = arg;
		log_warn("reload: cannot scale program=%s reason=\"%s\"", p->cfg.name, err);
		if (parent) {
			reply_putf(&parent->reply, '>', "scale %s: %s", p->cfg.name, err);
			parent->children_failed++;
		}
	}
}

/*
 * Reload the configuration file.  r may be NULL (SIGHUP).  With dry_run
 * only the plan is shown.  Answers when every scale and upgrade it
 * started has ended.
 */
void ops_reload(const struct reply *r, int dry_run)
{
	char err[16384];
	struct op *op;

	LIST_FOREACH(op, &ops, link)
		if (!dry_run) {
			log_warn("reload refused: %s is in progress", op->what);
			reply_finish(r, CTL_FAILED, "busy: %s is in progress; try again when it ends", op->what);
			return;
		}
	struct reload_plan *plan = reload_prepare(batond.config_path, err, sizeof(err));
	if (!plan) {
		for (char *line = err, *nl; *line; line = nl + 1) {
			if (!(nl = strchr(line, '\n')))
				nl = line + strlen(line) - 1;
			log_error("reload: %.*s", (int)(nl - line + (*nl != '\n')), line);
		}
		reply_put(r, '|', err, strlen(err));
		reply_finish(r, CTL_FAILED, "reload failed: nothing changed");
		return;
	}
	struct evbuffer *buf = evbuffer_new();
	if (!buf) {
		reload_free(plan);
		reply_finish(r, CTL_FAILED, "out of memory");
		return;
	}
	int changes = reload_describe(plan, buf);
	if (dry_run) {
		reply_buffer(r, '|', buf);
		evbuffer_free(buf);
		reload_free(plan);
		reply_finish(r, CTL_OK, "dry run: %d change%s, nothing applied", changes,
		       changes == 1 ? "" : "s");
		return;
	}
	size_t len = evbuffer_get_length(buf);
	const char *text = (const char *)evbuffer_pullup(buf, -1);
	if (text)
		reply_put(r, '>', text, len);
	log_info("reloading config=%s changes=%d", batond.config_path, changes);
	notify_reloading();
	struct op *rop = op_new(r, OP_RELOAD, "config");
	if (!rop) {
		evbuffer_free(buf);
		reload_free(plan);
		reply_finish(r, CTL_FAILED, "out of memory");
		return;
	}
	rop->children = 1; /* held until every child is started */
	if (reload_apply(plan, reload_upgrade, reload_scale, rop, err, sizeof(err)) < 0) {
		log_error("reload failed: %s", err);
		rop->children = 0;
		evbuffer_free(buf);
		reload_free(plan);
		op_end(rop, CTL_FAILED, err);
		return;
	}
	evbuffer_free(buf);
	reload_free(plan);
	/* Release the hold: ends now if nothing was started. */
	rop->children--;
	if (rop->children == 0)
		op_end(rop, rop->children_failed ? CTL_FAILED : CTL_OK,
		       rop->children_failed ? "reload applied, but some changes failed (see above)"
					    : "reloaded");
	else
		ops_pool_changed();
}


static int scale_start(const struct reply *r, struct op *parent, struct program *p, int n,
		       char *err, size_t errlen)
{
	struct op *busy = busy_with(p);
	if (busy && busy->kind == OP_SCALE) {
		/* A new target replaces the old one (say, to undo a scale-down
		 * that waits for draining workers): the old request fails. */
		char why[128];
		snprintf(why, sizeof(why), "superseded by scale %s %d", p->cfg.name, n);
		op_end(busy, CTL_FAILED, why);
		busy = busy_with(p);
	}
	if (busy) {
		snprintf(err, errlen, "%s is busy: %s is in progress", p->cfg.name, busy->what);
		return -1;
	}
	int before = pool_nslots_active(p);
	struct op *op = op_new_for(r, parent, OP_SCALE, p->cfg.name);
	if (!op) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	op->prog = p;
	op->target = n;
	if (pool_scale(p, n) < 0) {
		op_end(op, CTL_FAILED, "out of memory");
		return 0;
	}
	int hi = p->nslots > n ? p->nslots : n;
	for (int i = 0; i < hi; i++)
		if ((i >= before || i >= n) && op_add(op, p, i) < 0) {
			op_end(op, CTL_FAILED, "out of memory");
			return 0;
		}
	log_info("control: scale %s from %d to %d uid=%d", p->cfg.name, before, n,
		 reply_uid(r));
	reply_putf(op_reply(op), '>', "%s: %d -> %d workers", p->cfg.name, before, n);
	ops_pool_changed();
	return 0;
}


int ops_slots(enum op_kind kind, const char *name, const struct target *t, int n,
	      const struct reply *r, char *err, size_t errlen)
{
	for (int i = 0; i < n && kind != OP_STOP; i++) {
		struct op *busy = busy_with(t[i].prog);
		if (busy) {
			snprintf(err, errlen, "%s is busy: %s is in progress", t[i].prog->cfg.name,
				 busy->what);
			return -1;
		}
	}
	struct op *op = op_new(r, kind, name);
	if (!op || op_add_targets(op, t, n) < 0) {
		if (op)
			op_free(op);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	log_info("control: %s uid=%d slots=%d", op->what, reply_uid(r), op->n);
	for (int i = 0; i < op->n; i++) {
		struct slot *s = op_slot(&op->s[i]);
		if (kind == OP_START && pool_slot_start(s))
			reply_putf(r, '>', "%s:%d starting", op->s[i].prog->cfg.name, op->s[i].slot);
		else if (kind == OP_STOP) {
			if (pool_slot_live(s) || slot_has_workers(s))
				reply_putf(r, '>', "%s:%d draining", op->s[i].prog->cfg.name,
					   op->s[i].slot);
			pool_slot_hold(s);
		}
	}
	ops_pool_changed();
	return 0;
}

int ops_scale(struct program *p, int n, const struct reply *r, char *err, size_t errlen)
{
	return scale_start(r, NULL, p, n, err, errlen);
}

int ops_upgrade(struct program *p, const struct reply *r, char *err, size_t errlen)
{
	return upgrade_start(r, NULL, p, err, errlen);
}

int ops_upgrade_abort(struct program *p, int uid, char *msg, size_t msglen)
{
	struct op *op = upgrade_of(p);
	if (!op) {
		snprintf(msg, msglen, "no upgrade of %s is in progress", p->cfg.name);
		return -1;
	}
	if (op->rolling_back) {
		snprintf(msg, msglen, "the upgrade of %s is already rolling back", p->cfg.name);
		return 0;
	}
	op->aborted = 1;
	upgrade_fail(op, "aborted by uid %d", uid);
	snprintf(msg, msglen, "rolling back the upgrade of %s to generation %d", p->cfg.name,
		 op->old_gen);
	ops_pool_changed();
	return 0;
}

void ops_reply_gone(const void *ctx)
{
	struct op *op;
	LIST_FOREACH(op, &ops, link)
		if (op->reply.ctx == ctx)
			memset(&op->reply, 0, sizeof(op->reply));
}

void ops_end_all(void)
{
	struct op *op;
	while ((op = LIST_FIRST(&ops)))
		op_end(op, CTL_FAILED, "batond is shutting down");
}

/* Shutting down and every worker gone: end the event loop. */
static void shutdown_check(void)
{
	struct program *p;
	if (!batond.shutting_down)
		return;
	TAILQ_FOREACH(p, &batond.programs, link)
		if (!TAILQ_EMPTY(&p->workers))
			return;
	event_base_loopexit(batond.base, NULL);
}

void ops_shutdown(const char *why)
{
	struct program *p;
	struct listener *l;

	if (batond.shutting_down) {
		log_warn("second %s: stopping every worker now", why);
		TAILQ_FOREACH(p, &batond.programs, link)
			pool_stop_all(p);
		return;
	}
	log_info("shutting down: draining workers signal=%s", why);
	notify_stopping();
	batond.shutting_down = 1;
	ops_end_all();
	TAILQ_FOREACH(l, &batond.listeners, link)
		listener_set_paused(l, 1);
	TAILQ_FOREACH(p, &batond.programs, link) {
		pool_shutdown(p);
		dispatch_drop_queue(p, "shutting down");
	}
	shutdown_check();
}
