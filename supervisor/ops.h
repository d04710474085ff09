/*
 * The operations on slots (start, stop, restart, scale), reload and the
 * graceful shutdown.  Each is a state machine re-checked whenever the pool
 * changes (op.h); progress and the final answer go to the struct reply of
 * whoever asked (NULL: a signal), which may leave while the operation goes
 * on.  The rolling upgrade is upgrade.h's.
 */
#ifndef BATON_OPS_H
#define BATON_OPS_H

#include <stddef.h>

#include "op.h"

struct program;
struct target;

/*
 * start, stop or restart the targets' slots (name as the operator wrote
 * it, for logs).  Answers r when every slot is done.  0, or -1 with err
 * (busy with another operation, out of memory): nothing was started.
 */
int ops_slots(enum op_kind kind, const char *name, const struct target *t, int n,
	      const struct reply *r, char *err, size_t errlen);
/* Scale p to n workers (a pending scale of p is superseded); as above. */
int ops_scale(struct program *p, int n, const struct reply *r, char *err, size_t errlen);
/* Reload the config file (r NULL: SIGHUP); with dry_run only show the
 * plan.  Always answers r, at once or when what it started has ended. */
void ops_reload(const struct reply *r, int dry_run);
/* Graceful shutdown (SIGTERM, `batonctl shutdown`); a second one stops
 * every worker now.  why names the cause in the log. */
void ops_shutdown(const char *why);

#endif
