/* What every long operation shares: see op.h. */
#include "op.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batond.h"
#include "log.h"
#include "notify.h"
#include "pool.h"
#include "report.h"
#include "util.h"

struct op_head op_list = LIST_HEAD_INITIALIZER(op_list);

static const char *const kind_names[] = {"start", "stop", "restart", "scale", "upgrade", "reload", "reexec"};

struct op *op_new(const struct reply *r, struct op *parent, enum op_kind kind, const char *name,
		  int (*check)(struct op *op))
{
	struct op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->kind = kind;
	op->check = check;
	if (r)
		op->reply = *r;
	op->started_ms = now_ms();
	snprintf(op->what, sizeof(op->what), "%s %s", kind_names[kind], name);
	if (parent) {
		op->parent = parent;
		parent->children++;
	}
	LIST_INSERT_HEAD(&op_list, op, link);
	return op;
}

int op_add(struct op *op, struct program *p, int slot)
{
	struct op_slot *v = realloc(op->s, (op->n + 1) * sizeof(*v));
	if (!v)
		return -1;
	op->s = v;
	op->s[op->n++] = (struct op_slot){.prog = p, .slot = slot};
	return 0;
}

int op_add_targets(struct op *op, const struct target *t, int n)
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

void op_free(struct op *op)
{
	struct op *o;
	LIST_FOREACH(o, &op_list, link)
		if (o->parent == op)
			o->parent = NULL; /* orphaned children carry on silently */
	if (op->parent)
		op->parent->children--;
	if (op->kind == OP_RELOAD)
		notify_reloaded();
	if (op->freed)
		op->freed(op);
	LIST_REMOVE(op, link);
	free(op->s);
	free(op);
}

void op_end(struct op *op, int code, const char *msg)
{
	uint64_t ms = now_ms() - op->started_ms;
	struct op *parent = op->parent;

	log_msg(code ? LOGL_WARN : LOGL_INFO, "control: %s %s in %llums%s%s",
		op->what, code ? "failed" : "done", (unsigned long long)ms,
		code ? ": " : "", code ? msg : "");
	if (parent) {
		reply_putf(&parent->reply, '>', "%s: %s", op->what, msg);
		parent->children_failed += code != 0;
	} else {
		reply_finish(&op->reply, code, "%s", msg);
	}
	op_free(op);
	if (parent && parent->children == 0)
		parent->check(parent); /* its last child: the parent may end now */
}

const struct reply *op_reply(const struct op *op)
{
	return op->parent ? &op->parent->reply : &op->reply;
}

struct op *op_busy_with(const struct program *p)
{
	struct op *op;
	LIST_FOREACH(op, &op_list, link) {
		if (op->kind == OP_REEXEC)
			return op;
		if (op->prog == p && (op->kind == OP_UPGRADE || op->kind == OP_SCALE))
			return op;
		if (op->kind == OP_RESTART)
			for (int i = 0; i < op->n; i++)
				if (op->s[i].prog == p)
					return op;
	}
	return NULL;
}

void op_shutdown_check(void)
{
	struct program *p;
	if (!batond.shutting_down)
		return;
	TAILQ_FOREACH(p, &batond.programs, link)
		if (!TAILQ_EMPTY(&p->workers))
			return;
	event_base_loopexit(batond.base, NULL);
}

/* Re-check one operation; returns 1 when it ended (and was freed). */
static int op_check(struct op *op)
{
	if (batond.shutting_down) {
		op_end(op, CTL_FAILED, "batond is shutting down");
		return 1;
	}
	return op->check(op);
}

void op_pool_changed(void)
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
		for (op = LIST_FIRST(&op_list); op;)
			op = op_check(op) ? LIST_FIRST(&op_list) : LIST_NEXT(op, link);
	} while (again);
	busy = 0;
	notify_pool_changed();
	op_shutdown_check();
}

void op_reply_gone(const void *ctx)
{
	struct op *op;
	LIST_FOREACH(op, &op_list, link)
		if (op->reply.ctx == ctx)
			memset(&op->reply, 0, sizeof(op->reply));
}

void op_end_all(void)
{
	struct op *op;
	while ((op = LIST_FIRST(&op_list)))
		op_end(op, CTL_FAILED, "batond is shutting down");
}

struct slot *op_slot(const struct op_slot *os)
{
	return os->slot < os->prog->nslots ? os->prog->slots[os->slot] : NULL;
}

int op_replace_begin(struct op_slot *os, struct slot *s, int gen)
{
	struct worker *old = pool_slot_worker(s);
	os->old_pid = old ? old->pid : 0;
	struct worker *w = pool_slot_replace(s, gen);
	if (!w)
		return -1;
	os->new_pid = w->pid;
	return 0;
}

struct worker *op_replace_new(const struct op_slot *os)
{
	struct worker *w = pool_find_pid(os->new_pid);
	return w && w->prog == os->prog && w->state != WS_STOPPING && !w->broken ? w : NULL;
}

pid_t op_replace_drain(const struct op_slot *os)
{
	struct worker *old = os->old_pid ? pool_find_pid(os->old_pid) : NULL;
	if (!old || old->prog != os->prog)
		return 0;
	pid_t pid = old->pid;
	pool_drain_worker(old);
	return pid;
}
