/*
 * What batonctl shows: name resolution (`web`, `web:1`, `all`), the status
 * table (text or JSON) and the Prometheus metrics.  Everything is written
 * as plain lines into an evbuffer; the control module frames them.
 */
#ifndef BATON_REPORT_H
#define BATON_REPORT_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct program;

/* A program with every slot (slot -1) or one slot. */
struct target {
	struct program *prog;
	int slot;
};

/*
 * Resolve NAME into a malloc'd array (*out, free it); returns the count,
 * or -1 with the reason in err (no such program or worker, bad syntax).
 */
int report_targets(const char *name, struct target **out, char *err,
		   size_t errlen);

/*
 * Status of the targets (n == 0: everything, with the listeners).  Returns
 * 0, or 3 when a listed worker or slot is not RUNNING (batonctl's exit).
 */
int report_status(struct evbuffer *out, int json, const struct target *t,
		  int n, uint64_t now_ms);

/* Every metric (the control socket's too), in the Prometheus text
 * exposition format 0.0.4. */
void report_metrics(struct evbuffer *out);

/*
 * Readiness, for /readyz and systemd's STATUS=: writes "web 2/2, echo 1/1
 * running" into buf and returns 1 when every slot of every program is
 * served by a RUNNING worker (an old one still serving during an upgrade
 * counts; one that is draining does not).
 */
int report_readiness(char *buf, size_t size);

#endif
