/* batond's CPU scheduling policy: see cpusched.h. */
#include "cpusched.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "log.h"

static int base = -1;    /* the policy batond started with */
static int current = -1; /* the policy batond set for itself, -1 none */

static const char *policy_name(int policy)
{
	switch (policy & ~SCHED_RESET_ON_FORK) {
	case SCHED_OTHER:
		return "SCHED_OTHER";
	case SCHED_BATCH:
		return "SCHED_BATCH";
	case SCHED_IDLE:
		return "SCHED_IDLE";
	case SCHED_FIFO:
		return "SCHED_FIFO";
	case SCHED_RR:
		return "SCHED_RR";
	default:
		return "another policy";
	}
}

void cpusched_init(int b)
{
	base = b >= 0 ? b : sched_getscheduler(0);
	current = -1;
}

int cpusched_base(void)
{
	return base;
}

void cpusched_apply(int batch)
{
	struct sched_param sp = {.sched_priority = 0};
	int want = batch ? SCHED_BATCH : SCHED_OTHER;

	if (base != SCHED_OTHER) {
		/* Said once: the operator's policy is not ours to change. */
		static int said;
		if (batch && !said) {
			log_info("batch_scheduling: batond started with %s; keeping it (and its workers)",
				 policy_name(base));
			said = 1;
		}
		return;
	}
	if (sched_getscheduler(0) == want) {
		current = want == SCHED_BATCH ? want : -1;
		return;
	}
	if (sched_setscheduler(0, want, &sp) < 0) {
		log_warn("batch_scheduling: cannot switch batond to %s: %s", policy_name(want),
			 strerror(errno));
		return;
	}
	current = want == SCHED_BATCH ? want : -1;
	if (batch)
		log_info("batch_scheduling: batond runs as SCHED_BATCH, its workers as SCHED_OTHER");
	else
		log_info("batch_scheduling: off, batond runs as SCHED_OTHER");
}

int cpusched_child(void)
{
	struct sched_param sp = {.sched_priority = 0};

	if (current < 0)
		return 0;
	return sched_setscheduler(0, base, &sp);
}
