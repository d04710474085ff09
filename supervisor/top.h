/*
 * batonctl top: a live view of a running batond, refreshed every interval.
 * Part of batonctl, not of batond: it reads what every batond answers
 * already (status as JSON, and metrics).
 */
#ifndef BATON_TOP_H
#define BATON_TOP_H

#include <stdio.h>

#include "ctl.h"

/* Its line in batonctl's command list (batond does not know it). */
extern const struct ctl_command top_command;

/* Its usage and options, for `batonctl help top`. */
void top_help(FILE *f);
/*
 * Run `batonctl top` (argv[0] is "top") against the control socket at
 * path; timeout is how many seconds one refresh may wait for batond (0:
 * the default).  Returns the exit status; usage errors, and batond out of
 * reach at the start, exit as other commands do.
 */
int top_run(const char *path, long long timeout, int argc, char **argv);

#endif
