/*
 * batond's CPU scheduling policy: SCHED_BATCH for itself, the policy it
 * started with for its workers (the `batch_scheduling` key).
 *
 * batond and its workers are one workload.  With the default policy a task
 * that wakes preempts the one running on its CPU, so on a busy machine every
 * ACK a worker sends pulls batond onto the worker's CPU for a handful of
 * connections, and every CONN batond sends pulls the worker back: twice the
 * context switches for the same work.  A SCHED_BATCH batond never preempts a
 * worker on waking (sched(7)); it runs when a CPU is free or at the next
 * tick, and then accepts and hands over everything that has piled up.
 * Nothing changes while a CPU is idle, and batond's share of the CPU (its
 * nice value) stays the same.
 *
 * Only a batond that starts as SCHED_OTHER switches: a policy the operator
 * chose (chrt, systemd's CPUSchedulingPolicy=) is kept, for batond and,
 * by inheritance, for its workers.  The policy batond started with crosses
 * a reexec, so that the new image knows what its workers must get back.
 */
#ifndef BATON_CPUSCHED_H
#define BATON_CPUSCHED_H

/* Note the policy batond started with: base, or its own current policy when
 * base < 0 (a fresh start, or a state from a build without this). */
void cpusched_init(int base);
/* The policy noted by cpusched_init(), for the reexec state. */
int cpusched_base(void);
/* Follow the batch_scheduling key (at start-up and on every reload); logs
 * what it does and never fails: a policy that cannot be set is a warning. */
void cpusched_apply(int batch);
/* In a forked child before exec: back to the policy batond started with.
 * Async-signal-safe; 0 or -1 with errno. */
int cpusched_child(void);

#endif
