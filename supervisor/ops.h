/*
 * Long operations on the pool: start, stop, restart and scale of slots, a
 * rolling upgrade (rolled back when a new worker fails), reload, and the
 * graceful shutdown.  Each is a state machine re-checked whenever the pool
 * changes; progress and the final answer go to the struct reply of whoever
 * asked (NULL: a signal), which may go away while the operation goes on.
 */
#ifndef BATON_OPS_H
#define BATON_OPS_H

#include <stddef.h>

#include "reply.h"

struct program;
struct target;

enum op_kind { OP_START, OP_STOP, OP_RESTART, OP_SCALE, OP_UPGRADE, OP_RELOAD };

/*
 * start, stop or restart the targets' slots (name as the operator wrote
 * it, for logs).  Answers r when every slot is done.  0, or -1 with err
 * (busy with another operation, out of memory): nothing was started.
 */
int ops_slots(enum op_kind kind, const char *name, const struct target *t, int n,
	      const struct reply *r, char *err, size_t errlen);
/* Scale p to n workers (a pending scale of p is superseded); as above. */
int ops_scale(struct program *p, int n, const struct reply *r, char *err, size_t errlen);
/* Rolling upgrade of p to a new generation; as above. */
int ops_upgrade(struct program *p, const struct reply *r, char *err, size_t errlen);
/* SIGUSR2: upgrade every program (what cannot start is logged). */
void ops_upgrade_all(void);
/* Roll back p's running upgrade (uid for the log): 0 with what happens
 * in msg, or -1 with why not. */
int ops_upgrade_abort(struct program *p, int uid, char *msg, size_t msglen);
/* Reload the config file (r NULL: SIGHUP); with dry_run only show the
 * plan.  Always answers r, at once or when what it started has ended. */
void ops_reload(const struct reply *r, int dry_run);

/* Graceful shutdown (SIGTERM, `batonctl shutdown`); a second one stops
 * every worker now.  why names the cause in the log. */
void ops_shutdown(const char *why);

/* The pool's hook: re-check every operation, tell systemd, end the loop
 * once a shutdown has no worker left. */
void ops_pool_changed(void);
/* The client behind ctx left: its operations go on without a reply. */
void ops_reply_gone(const void *ctx);
/* Fail every operation ("batond is shutting down"). */
void ops_end_all(void);

#endif
