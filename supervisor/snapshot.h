/*
 * The whole of batond in a reexec state: written by the old image (the
 * reexec hook), checked by `batond --check-state`, and rebuilt by the new
 * image at start-up.  The records and their order are in STATE.md.
 */
#ifndef BATON_SNAPSHOT_H
#define BATON_SNAPSHOT_H

#include <stddef.h>

#include "reexec.h"

struct reply;
struct state;
struct state_out;

/* The reexec hook: every record, in the order the new image reads them. */
void snapshot_save(struct state_out *o, const struct reply *requester, int final);
/*
 * Read every record without touching a file descriptor (the check mode
 * runs in a child that has none of them): unknown required records,
 * configs that do not parse, a missing record.  0, or -1 with err.
 */
int snapshot_check(const struct state *st, char *err, size_t errlen);
/*
 * Rebuild batond from st (the event base exists, nothing else does):
 * memory and events only, nothing sent, no worker started.  *requester
 * is the client to answer (NULL if it left), *info the reexec record.
 * 0, or -1 with the reason in err.
 */
int snapshot_restore(const struct state *st, const struct reply **requester,
		     struct reexec_info *info, char *err, size_t errlen);
/* Start what was rebuilt: channels read, timers armed, listeners polled. */
void snapshot_start(void);

#endif
