/*
 * The operations on slots (start, stop, restart, scale), reload, and the
 * graceful shutdown: see ops.h.  Each is a state machine that op.c
 * re-checks whenever the pool changes; upgrade.c has the rolling upgrade.
 */
#include "ops.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batond.h"
#include "dispatch.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "op.h"
#include "pool.h"
#include "reload.h"
#include "report.h"
#include "upgrade.h"

/* Waiting for a slot to have a RUNNING worker: 1 yes, 0 not yet, -1 never. */
static int wait_running(struct op *op, struct op_slot *os, char *why, size_t size)
{
	struct slot *s = op_slot(os);
	struct worker *w;

	if (!s || s->removing) {
		snprintf(why, size, "%s:%d was removed", os->prog->cfg.name, os->slot);
		return -1;
	}
	if ((w = pool_slot_worker(s)) && w->state == WS_RUNNING) {
		if (os->phase == PHASE_NEW || os->phase == PHASE_WAITING)
			reply_putf(op_reply(op), '>', "%s:%d running pid %d", os->prog->cfg.name,
				   os->slot, (int)w->pid);
		os->phase = PHASE_DONE;
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
	if (s->state == SLOT_BACKOFF && os->phase != PHASE_RETRYING) {
		reply_putf(op_reply(op), '>', "%s:%d failed to start (%s), retrying",
			   os->prog->cfg.name, os->slot, s->last_exit);
		os->phase = PHASE_RETRYING; /* reported; the next start attempt resets it */
	} else if (s->state == SLOT_UP) {
		os->phase = PHASE_WAITING;
	}
	return 0;
}

/* Waiting for a stopped slot's workers to be gone: 1 done, 0 not yet, -1 never. */
static int wait_stopped(struct op *op, struct op_slot *os, char *why, size_t size)
{
	struct slot *s = op_slot(os);

	if (s && !s->held) {
		snprintf(why, size, "%s:%d was started again before it stopped", os->prog->cfg.name,
			 os->slot);
		return -1;
	}
	if (s && pool_slot_has_workers(s))
		return 0;
	reply_putf(op_reply(op), '>', "%s:%d stopped", os->prog->cfg.name, os->slot);
	os->phase = PHASE_DONE;
	return 1;
}

/* Waiting for a slot scaled away to be gone: 1 done, 0 not yet, -1 never. */
static int wait_removed(struct op *op, struct op_slot *os, char *why, size_t size)
{
	struct slot *s = op_slot(os);

	if (s && !s->removing) {
		snprintf(why, size, "%s:%d was kept by a later scale or start", os->prog->cfg.name,
			 os->slot);
		return -1;
	}
	if (s)
		return 0; /* removed when its workers are gone */
	reply_putf(op_reply(op), '>', "%s:%d removed", os->prog->cfg.name, os->slot);
	os->phase = PHASE_DONE;
	return 1;
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
	if (os->phase == PHASE_NEW) {
		if (op_replace_begin(os, s, s->generation) < 0) {
			snprintf(why, size, "%s:%d: cannot start a worker: %s", name, os->slot,
				 s->last_exit[0] ? s->last_exit : "fork failed");
			return -1;
		}
		os->phase = PHASE_WAITING;
		if (os->old_pid)
			reply_putf(op_reply(op), '>', "%s:%d started pid %d to replace pid %d", name,
				   os->slot, (int)os->new_pid, (int)os->old_pid);
		else
			reply_putf(op_reply(op), '>', "%s:%d started pid %d", name, os->slot,
				   (int)os->new_pid);
	}
	if (!(w = op_replace_new(os))) {
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
	pid_t old = op_replace_drain(os);
	if (old)
		reply_putf(op_reply(op), '>', "%s:%d pid %d ready, draining pid %d", name, os->slot,
			   (int)w->pid, (int)old);
	else
		reply_putf(op_reply(op), '>', "%s:%d pid %d ready", name, os->slot, (int)w->pid);
	os->phase = PHASE_DONE;
	return 1;
}

/* start, stop, restart, scale: step every slot, then answer. */
static int slots_check(struct op *op)
{
	char why[CTL_LINE_MAX - 16];
	int pending = 0;

	for (int i = 0; i < op->n; i++) {
		struct op_slot *os = &op->s[i];
		int r = 1;
		if (os->phase == PHASE_DONE)
			continue;
		switch (op->kind) {
		case OP_START:
			r = wait_running(op, os, why, sizeof(why));
			break;
		case OP_STOP:
			r = wait_stopped(op, os, why, sizeof(why));
			break;
		case OP_RESTART:
			r = restart_step(op, os, why, sizeof(why));
			if (r == 0) {
				pending = 1;
				i = op->n; /* one slot at a time */
				continue;
			}
			break;
		case OP_SCALE:
			if (os->slot < op->target)
				r = wait_running(op, os, why, sizeof(why));
			else
				r = wait_removed(op, os, why, sizeof(why));
			break;
		case OP_UPGRADE:
		case OP_RELOAD:
		case OP_REEXEC:
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
	case OP_REEXEC:
		break;
	}
	return 1;
}

int ops_slots(enum op_kind kind, const char *name, const struct target *t, int n,
	      const struct reply *r, char *err, size_t errlen)
{
	for (int i = 0; i < n && kind != OP_STOP; i++) {
		struct op *busy = op_busy_with(t[i].prog);
		if (busy) {
			snprintf(err, errlen, "%s is busy: %s is in progress", t[i].prog->cfg.name,
				 busy->what);
			return -1;
		}
	}
	struct op *op = op_new(r, NULL, kind, name, slots_check);
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
			if (pool_slot_live(s) || pool_slot_has_workers(s))
				reply_putf(r, '>', "%s:%d draining", op->s[i].prog->cfg.name,
					   op->s[i].slot);
			pool_slot_hold(s);
		}
	}
	op_pool_changed();
	return 0;
}

/* Scale p to n workers, alone or as a reload's child; 0, or -1 with err. */
static int scale_start(const struct reply *r, struct op *parent, struct program *p, int n,
		       char *err, size_t errlen)
{
	struct op *busy = op_busy_with(p);
	if (busy && busy->kind == OP_SCALE) {
		/* A new target replaces the old one (say, to undo a scale-down
		 * that waits for draining workers): the old request fails. */
		char why[128];
		snprintf(why, sizeof(why), "superseded by scale %s %d", p->cfg.name, n);
		op_end(busy, CTL_FAILED, why);
		busy = op_busy_with(p);
	}
	if (busy) {
		snprintf(err, errlen, "%s is busy: %s is in progress", p->cfg.name, busy->what);
		return -1;
	}
	int before = pool_nslots_active(p);
	struct op *op = op_new(r, parent, OP_SCALE, p->cfg.name, slots_check);
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
	log_info("control: scale %s from %d to %d uid=%d", p->cfg.name, before, n, reply_uid(r));
	reply_putf(op_reply(op), '>', "%s: %d -> %d workers", p->cfg.name, before, n);
	op_pool_changed();
	return 0;
}

int ops_scale(struct program *p, int n, const struct reply *r, char *err, size_t errlen)
{
	return scale_start(r, NULL, p, n, err, errlen);
}

/* A reload's upgrade or scale could not start: the reload reports it. */
static void child_failed(struct op *parent, const char *what, const struct program *p,
			 const char *err)
{
	log_warn("reload: cannot %s program=%s reason=\"%s\"", what, p->cfg.name, err);
	if (parent) {
		reply_putf(&parent->reply, '>', "%s %s: %s", what, p->cfg.name, err);
		parent->children_failed++;
	}
}

static void reload_upgrade(struct program *p, void *arg)
{
	char err[256];
	if (upgrade_start(NULL, arg, p, err, sizeof(err)) < 0)
		child_failed(arg, "upgrade", p, err);
}

static void reload_scale(struct program *p, int n, void *arg)
{
	char err[256];
	if (scale_start(NULL, arg, p, n, err, sizeof(err)) < 0)
		child_failed(arg, "scale", p, err);
}

/* A reload ends with the last scale or upgrade it started. */
static int reload_check(struct op *op)
{
	if (op->children)
		return 0;
	if (op->children_failed)
		op_end(op, CTL_FAILED, "reload applied, but some changes failed (see above)");
	else
		op_end(op, CTL_OK, "reloaded");
	return 1;
}

void ops_reload(const struct reply *r, int dry_run)
{
	char err[16384];
	struct op *op;

	LIST_FOREACH(op, &op_list, link)
		if (!dry_run) {
			log_warn("reload refused: %s is in progress", op->what);
			reply_finish(r, CTL_FAILED, "busy: %s is in progress; try again when it ends",
				     op->what);
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
	reply_buffer(r, dry_run ? '|' : '>', buf);
	evbuffer_free(buf);
	if (dry_run) {
		reload_free(plan);
		reply_finish(r, CTL_OK, "dry run: %d change%s, nothing applied", changes,
			     changes == 1 ? "" : "s");
		return;
	}
	log_info("reloading config=%s changes=%d", batond.config_path, changes);
	notify_reloading();
	struct op *rop = op_new(r, NULL, OP_RELOAD, "config", reload_check);
	if (!rop) {
		reload_free(plan);
		reply_finish(r, CTL_FAILED, "out of memory");
		return;
	}
	rop->children = 1; /* held until every child is started */
	if (reload_apply(plan, reload_upgrade, reload_scale, rop, err, sizeof(err)) < 0) {
		log_error("reload failed: %s", err);
		rop->children = 0;
		reload_free(plan);
		op_end(rop, CTL_FAILED, err);
		return;
	}
	reload_free(plan);
	/* Release the hold: ends now if nothing was started. */
	rop->children--;
	if (!reload_check(rop))
		op_pool_changed();
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
	op_end_all();
	TAILQ_FOREACH(l, &batond.listeners, link)
		listener_set_paused(l, 1);
	TAILQ_FOREACH(p, &batond.programs, link) {
		pool_shutdown(p);
		dispatch_drop_queue(p, "shutting down");
	}
	op_shutdown_check(); /* ends the loop at once when no worker is left */
}
