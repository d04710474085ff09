/*
 * What every long operation shares (the operations themselves are ops.c
 * and upgrade.c): the list of operations in progress, their lifecycle and
 * reply, the re-check whenever the pool changes, the slots they work on
 * with named phases, and the replace-then-drain step that restart,
 * upgrade and rollback all take.
 */
#ifndef BATON_OP_H
#define BATON_OP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "ctl.h"
#include "reply.h"

struct program;
struct slot;
struct target;
struct worker;

enum op_kind { OP_START, OP_STOP, OP_RESTART, OP_SCALE, OP_UPGRADE, OP_RELOAD, OP_REEXEC };

/* Where an operation is with one slot. */
enum op_phase {
	PHASE_NEW,       /* nothing done yet (upgrade: the old worker serves) */
	PHASE_WAITING,   /* waiting for the pool: a worker starts or leaves */
	PHASE_RETRYING,  /* start, scale: a failed start was reported; the slot retries */
	PHASE_DONE,      /* this slot is finished */
	PHASE_SWITCHED,  /* upgrade: the new generation serves (a rollback may revert it) */
	PHASE_REVERTING, /* rollback: a worker of the old generation starts again */
	PHASE_REVERTED,  /* rollback: the old generation serves again */
};

/* One slot an operation works on. */
struct op_slot {
	struct program *prog;
	int slot;
	enum op_phase phase;
	pid_t old_pid, new_pid; /* replace-then-drain: the worker replaced, and its successor */
};

struct op {
	LIST_ENTRY(op) link;
	enum op_kind kind;
	/* Re-check against the pool: 1 when the operation ended (and was freed). */
	int (*check)(struct op *op);
	/* Called as it is freed (reexec: its preflight child goes too). */
	void (*freed)(struct op *op);
	struct reply reply; /* zeroed once the client left: the op goes on */
	char what[64];      /* "restart web", for logs */
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

/* Every operation in progress, newest first. */
LIST_HEAD(op_head, op);
extern struct op_head op_list;

/* A new operation answering r (may be NULL), or a child of parent (a
 * reload), re-checked by check; NULL when out of memory. */
struct op *op_new(const struct reply *r, struct op *parent, enum op_kind kind, const char *name,
		  int (*check)(struct op *op));
/* Add one slot (-1 on ENOMEM), or the targets' slots. */
int op_add(struct op *op, struct program *p, int slot);
int op_add_targets(struct op *op, const struct target *t, int n);
/* Free without an answer (it failed to start: the caller answers). */
void op_free(struct op *op);
/* Answer (or, for a child, tell the parent), log, free. */
void op_end(struct op *op, int code, const char *msg);
/* Where an operation's progress goes: a reload's children report to it. */
const struct reply *op_reply(const struct op *op);
/* The operation p is busy with (an upgrade, a scale, a restart, or a
 * reexec, which keeps every program busy), or NULL. */
struct op *op_busy_with(const struct program *p);

/* The pool changed: re-check every operation, then tell systemd; once a
 * shutdown has no worker left, end the event loop. */
void op_pool_changed(void);
/* Shutting down and every worker gone: end the event loop. */
void op_shutdown_check(void);
/* The client behind ctx left: its operations go on without a reply. */
void op_reply_gone(const void *ctx);
/* Fail every operation: batond is shutting down. */
void op_end_all(void);

/* The slot of os, or NULL once it was scaled away. */
struct slot *op_slot(const struct op_slot *os);

/*
 * Replace-then-drain, the step restart, upgrade and rollback share: start
 * a worker of generation gen next to the slot's live one (both pids go in
 * os), wait until the new one is RUNNING, then drain the old one.
 */
/* Start the new worker: 0, or -1 when none could be started. */
int op_replace_begin(struct op_slot *os, struct slot *s, int gen);
/* The new worker, or NULL once it is gone: exited, stopping or broken. */
struct worker *op_replace_new(const struct op_slot *os);
/* Drain the replaced worker if it is still there: its pid, or 0. */
pid_t op_replace_drain(const struct op_slot *os);

#endif
