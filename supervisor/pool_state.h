/*
 * The engine across a reexec: programs (their config in force, generation,
 * counters and histograms), slots, workers (pid, channel, state, credit,
 * timers as CLOCK_MONOTONIC deadlines, output pipes) and every connection
 * not yet acknowledged (queued, chosen, or sent), each with its fd.
 */
#ifndef BATON_POOL_STATE_H
#define BATON_POOL_STATE_H

#include <stddef.h>

struct state_out;
struct state_rec;

/* Write "engine", "program", "slot", "worker" and "conn" records. */
void pool_state_save(struct state_out *o);
/*
 * Rebuild from one record (in the order they were written): 1 when it
 * was one of the engine's, 0 when not, -1 with the reason in err.  Builds
 * memory only: nothing is sent, no event is armed, no fd closed.
 */
int pool_state_restore(const struct state_rec *r, char *err, size_t errlen);
/* Everything is restored: read the channels and outputs, arm the timers,
 * send what was pending. */
void pool_state_start(void);

#endif
