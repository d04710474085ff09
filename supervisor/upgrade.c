/*
 * Rolling upgrade.  Slots go in batches of upgrade_batch: start a worker
 * of the new generation next to each old one, wait until all of the batch
 * are ready, then drain the old ones and go on.  If a new worker fails
 * (exits, or is not ready within ready_timeout) or --abort is asked, roll
 * back: new workers still starting are stopped, and every slot already
 * switched gets a worker of the old generation again (the new one is
 * drained once that is ready).
 */
#include "upgrade.h"

#include <stdarg.h>
#include <stdio.h>

#include "batond.h"
#include "log.h"
#include "op.h"
#include "pool.h"

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
		if (os->phase != PHASE_WAITING)
			continue;
		if ((w = pool_find_pid(os->new_pid)) && w->prog == op->prog) {
			w->replacement = 1; /* its exit must not restart the slot */
			pool_stop_worker(w);
		}
		os->phase = PHASE_NEW;
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

/* The rollback failed too: the upgrade ends with both reasons. */
static int rollback_failed(struct op *op, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int rollback_failed(struct op *op, const char *fmt, ...)
{
	char what[CTL_LINE_MAX - 64], why[CTL_LINE_MAX - 16];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(why, sizeof(why), "%s; rollback failed too: %s", op->failure, what);
	op->prog->upgrades[UPGRADE_FAILED]++;
	op_end(op, CTL_FAILED, why);
	return 1;
}

static int upgrade_rollback(struct op *op)
{
	const char *name = op->prog->cfg.name;
	char why[CTL_LINE_MAX - 16];
	int pending = 0;

	for (int i = 0; i < op->n; i++) {
		struct op_slot *os = &op->s[i];
		struct slot *s = op_slot(os);
		struct worker *w;
		if (!s || (os->phase != PHASE_SWITCHED && os->phase != PHASE_REVERTING))
			continue;
		if (os->phase == PHASE_SWITCHED) {
			if (op_replace_begin(os, s, op->old_gen) < 0)
				return rollback_failed(op, "cannot start %s:%d", name, os->slot);
			os->phase = PHASE_REVERTING;
			reply_putf(op_reply(op), '>', "%s:%d started pid %d (generation %d) to replace pid %d",
				   name, os->slot, (int)os->new_pid, op->old_gen, (int)os->old_pid);
		}
		if (!(w = op_replace_new(os)))
			return rollback_failed(op, "%s:%d: %s", name, os->slot, s->last_exit);
		if (w->state != WS_RUNNING) {
			pending = 1;
			continue;
		}
		op_replace_drain(os);
		s->generation = op->old_gen;
		os->phase = PHASE_REVERTED;
		reply_putf(op_reply(op), '>', "%s:%d back on generation %d, pid %d", name, os->slot,
			   op->old_gen, (int)w->pid);
	}
	if (pending || new_gen_left(op))
		return 0; /* wait until no worker of the new generation is left */
	op->prog->upgrades[op->aborted ? UPGRADE_ABORTED : UPGRADE_FAILED]++;
	if (op->prog->old_cfg && op->prog->old_cfg_generation == op->old_gen) {
		pool_revert_cfg(op->prog);
		log_warn("program=%s runs its previous configuration again; the file's is not applied",
			 name);
	}
	snprintf(why, sizeof(why), "upgrade of %s %s: %s; generation %d serves at full count",
		 name, op->aborted ? "aborted" : "failed", op->failure, op->old_gen);
	op_end(op, CTL_FAILED, why);
	return 1;
}

/* Start the new workers of the batch [cursor, end): 1 all RUNNING, 0 some
 * still starting, -1 the upgrade failed (upgrade_fail was called). */
static int batch_ready(struct op *op, int end)
{
	struct program *p = op->prog;
	int ready = 1;

	for (int i = op->cursor; i < end; i++) {
		struct op_slot *os = &op->s[i];
		struct slot *s = op_slot(os);
		struct worker *w;
		if (!s || s->removing) {
			upgrade_fail(op, "%s:%d was removed during the upgrade", p->cfg.name, os->slot);
			return -1;
		}
		if (os->phase == PHASE_NEW) {
			if (op_replace_begin(os, s, op->new_gen) < 0) {
				upgrade_fail(op, "%s:%d: cannot start a worker", p->cfg.name, os->slot);
				return -1;
			}
			os->phase = PHASE_WAITING;
			reply_putf(op_reply(op), '>', "%s:%d started pid %d (generation %d)%s",
				   p->cfg.name, os->slot, (int)os->new_pid, op->new_gen,
				   os->old_pid ? "" : ", slot had no worker");
		}
		if (!(w = op_replace_new(os))) {
			upgrade_fail(op, "%s:%d: new worker pid %d failed: %s", p->cfg.name, os->slot,
				     (int)os->new_pid, s->last_exit);
			return -1;
		}
		if (w->state != WS_RUNNING)
			ready = 0;
	}
	return ready;
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
		if (os->phase == PHASE_SWITCHED && !op_replace_new(os)) {
			upgrade_fail(op, "%s:%d: new worker pid %d exited after taking over: %s",
				     p->cfg.name, os->slot, (int)os->new_pid,
				     s ? s->last_exit : "slot removed");
			return upgrade_rollback(op);
		}
	}
	while (op->cursor < op->n) {
		int end = op->cursor + op->batch < op->n ? op->cursor + op->batch : op->n;
		int r = batch_ready(op, end);
		if (r < 0)
			return upgrade_rollback(op);
		if (r == 0)
			return 0;
		/* The whole batch is ready: now the old ones may go. */
		for (int i = op->cursor; i < end; i++) {
			struct op_slot *os = &op->s[i];
			op_slot(os)->generation = op->new_gen;
			os->phase = PHASE_SWITCHED;
			pid_t old = op_replace_drain(os);
			if (old)
				reply_putf(op_reply(op), '>', "%s:%d pid %d ready, draining pid %d",
					   p->cfg.name, os->slot, (int)os->new_pid, (int)old);
			else
				reply_putf(op_reply(op), '>', "%s:%d pid %d ready", p->cfg.name,
					   os->slot, (int)os->new_pid);
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

int upgrade_start(const struct reply *r, struct op *parent, struct program *p, char *err,
		  size_t errlen)
{
	struct op *op, *busy = op_busy_with(p);

	if (busy) {
		snprintf(err, errlen, "%s is busy: %s is in progress%s", p->cfg.name, busy->what,
			 busy->kind == OP_UPGRADE ? " (batonctl upgrade --abort to roll it back)" : "");
		return -1;
	}
	op = op_new(r, parent, OP_UPGRADE, p->cfg.name, upgrade_check);
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
			op_free(op);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	if (op->n == 0) {
		op_free(op);
		snprintf(err, errlen, "%s has no workers to upgrade", p->cfg.name);
		return -1;
	}
	log_info("upgrade started program=%s from_generation=%d to_generation=%d batch=%d uid=%d",
		 p->cfg.name, op->old_gen, op->new_gen, op->batch, reply_uid(r));
	reply_putf(op_reply(op), '>', "%s: generation %d -> %d, %d worker%s, %d at a time",
		   p->cfg.name, op->old_gen, op->new_gen, op->n, op->n == 1 ? "" : "s", op->batch);
	op_pool_changed();
	return 0;
}

void upgrade_all(void)
{
	struct program *p;
	char err[256];
	TAILQ_FOREACH(p, &batond.programs, link)
		if (upgrade_start(NULL, NULL, p, err, sizeof(err)) < 0)
			log_warn("SIGUSR2: not upgrading program=%s reason=\"%s\"", p->cfg.name, err);
}

int upgrade_abort(struct program *p, int uid, char *msg, size_t msglen)
{
	struct op *op;
	LIST_FOREACH(op, &op_list, link)
		if (op->kind == OP_UPGRADE && op->prog == p)
			break;
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
	op_pool_changed();
	return 0;
}
