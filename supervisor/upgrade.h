/*
 * The rolling upgrade of a program to a new generation, upgrade_batch
 * slots at a time, rolled back when a new worker fails or on --abort.
 */
#ifndef BATON_UPGRADE_H
#define BATON_UPGRADE_H

#include <stddef.h>

struct op;
struct program;
struct reply;

/* Start an upgrade of p answering r (NULL: a signal), or as a child of a
 * reload (parent).  0, or -1 with err (busy, nothing to upgrade, ENOMEM). */
int upgrade_start(const struct reply *r, struct op *parent, struct program *p, char *err,
		  size_t errlen);
/* SIGUSR2: upgrade every program (what cannot start is logged). */
void upgrade_all(void);
/* Roll back p's running upgrade (uid for the log): 0 with what happens
 * in msg, or -1 with why not. */
int upgrade_abort(struct program *p, int uid, char *msg, size_t msglen);

#endif
